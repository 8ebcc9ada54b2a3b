"""benchmarks/generative_replay.md is exactly what its committed record renders to."""

from __future__ import annotations

import json

from benchmarks import generative_replay as gr


def test_the_page_re_renders_from_its_record():
    records = gr.load_record()
    assert records and {r["key"] for r in records} <= set(gr.RUNS)
    assert gr.render(records) == gr.OUT.read_text(encoding="utf-8")


def test_a_new_run_replaces_the_one_in_its_place(tmp_path):
    path = tmp_path / "record.json"
    gr.save_run({"key": "grw", "n_tasks": 20, "cpu_s": 1.0}, path)
    gr.save_run({"key": "grw", "n_tasks": 5, "requested_tasks": 5, "cpu_s": 2.0}, path)
    gr.save_run({"key": "grw", "n_tasks": 20, "cpu_s": 3.0}, path)
    assert [(r["n_tasks"], r["cpu_s"]) for r in gr.load_record(path)] == [(20, 3.0), (5, 2.0)]
    assert json.loads(path.read_text())["runs"] == gr.load_record(path)


def test_ratios_are_to_sequential_of_the_same_tasks():
    rec = {"summary": {"mSA": 1.0, "mUA": 1.0, "mH": 1.0, "mAUC": 1.0,
                       "forgetting_final": None}, "wall_s": 1.0, "load": None,
           "overrides": []}
    page = gr.render([{**rec, "key": "sequential", "n_tasks": 5, "cpu_s": 10.0},
                      {**rec, "key": "grw", "n_tasks": 5, "cpu_s": 25.0},
                      {**rec, "key": "grw", "n_tasks": 20, "cpu_s": 7.0}])
    five = page.split("## 5 tasks")[1]
    assert "| 25 | 2.5 |" in five
    assert "| 7 | – |" in page.split("## 20 tasks")[1].split("## 5 tasks")[0]


def test_seeds_keep_their_own_places_and_are_averaged():
    def rec(key, seed, mh, cpu):
        return {"key": key, "seed": seed, "n_tasks": 20, "cpu_s": cpu, "wall_s": 1.0,
                "load": [1.0, 2.0], "overrides": [],
                "summary": {"mSA": 1.0, "mUA": 1.0, "mH": mh, "mAUC": 1.0,
                            "forgetting_final": 0.1}}
    records = [rec("sequential", 0, 10.0, 10.0), rec("sequential", 1, 12.0, 30.0),
               rec("grw", 0, 14.0, 40.0), rec("grw", 1, 16.0, 40.0)]
    page = gr.render(records)
    assert "| 0, 1 | 1.0 ± 0.0 | 1.0 ± 0.0 | 11.0 ± 1.4 |" in page  # Sequential: mean ± std of 2 seeds
    assert "| 40 ± 0 | 2.0 |" in page  # mean CPU over Sequential's mean CPU
    assert len({gr._slot(r) for r in records}) == 4
