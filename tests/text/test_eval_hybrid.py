"""zsv eval hybrid: each mode's Recall@K on an index, from (image, query) pairs."""

from __future__ import annotations

import json
import shutil

from zeroshot_vision import SearchEngine
from zeroshot_vision._cli import EXIT_OK, main
from zeroshot_vision.eval._hybrid import evaluate_hybrid
from zeroshot_vision.eval._labelled_data import read_pairs_tsv


def test_hybrid_eval_scores_every_mode(tmp_path, photo_paths, tiny_encoder, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in photo_paths:
        shutil.copy(path, photos / path.name)
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        engine.index_folder(photos, places=False)
    # The file names are on the lexical side: a query naming them is found by words.
    rows = ["image\tcaption"] + [f"photos/{p.name}\t{p.stem} photo" for p in photo_paths]
    rows.append("photos/missing.png\tnot there")
    (tmp_path / "pairs.tsv").write_text("\n".join(rows) + "\n")
    (photos / "missing.png").write_bytes((photos / photo_paths[0].name).read_bytes())
    dataset = read_pairs_tsv(tmp_path / "pairs.tsv")
    with SearchEngine.open(tmp_path / "index", encoder=tiny_encoder) as engine:
        result = evaluate_hybrid(engine, dataset)
    scores = {s.mode: s for s in result.modes}
    assert result.queries == len(photo_paths) and len(result.not_indexed) == 1
    assert scores["text"].recall[1] == 1.0 and scores["hybrid"].recall[1] >= 0.8
    assert scores["hybrid"].recall[1] >= scores["vector"].recall[1]
    assert 0 <= scores["vector"].mrr <= 1
    code = main(
        ["eval", "hybrid", "--data", str(tmp_path / "pairs.tsv"), "--index",
         str(tmp_path / "index"), "--json"]
    )  # fmt: skip
    assert code == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["modes"]["text"]["recall@1"] == 1.0
