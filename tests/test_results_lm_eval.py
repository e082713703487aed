"""lm-eval's real ``simple_evaluate`` output (in memory, not JSON) goes through the store.

A deterministic rule-based LM (a real ``lm_eval.api.model.LM`` subclass, no model weights)
answers two local tasks: a generation task with two filters and a multiple-choice task.
"""

from __future__ import annotations

from evalsuite.results.convert import RunFacts, Totals
from evalsuite.results.schema import ModelInfo, Seeds

import json
from pathlib import Path

import pytest

from evalsuite.results import collect_environment, read_run, write_run_from_lm_eval

DOCS = [
    {"question": "1+1?", "answer": "2", "choices": ["2", "3"], "label": 0},
    {"question": "2+3?", "answer": "5", "choices": ["4", "5"], "label": 1},
    {"question": "<script>alert(1)</script>", "answer": "7", "choices": ["7", "8"], "label": 0},
    {"question": "9-4?", "answer": "5", "choices": ["5", "6"], "label": 0},
]

GEN_YAML = """
task: t_gen
dataset_path: json
dataset_kwargs: {{data_files: {{test: "{data}"}}}}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs: {{until: ["\\n"], max_gen_toks: 8}}
filter_list:
  - name: strict
    filter: [{{function: regex, regex_pattern: "(\\\\d+)"}}, {{function: take_first}}]
  - name: loose
    filter: [{{function: take_first}}]
metric_list: [{{metric: exact_match, aggregation: mean, higher_is_better: true}}]
metadata: {{version: 3.0}}
"""

MC_YAML = """
task: t_mc
dataset_path: json
dataset_kwargs: {{data_files: {{test: "{data}"}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list: [{{metric: acc}}]
metadata: {{version: 1.0}}
"""


@pytest.fixture(scope="module")
def lm_eval_output(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    class RuleLM(LM):
        """Answers '2' to everything and prefers shorter continuations."""

        def loglikelihood(self, requests):
            return [
                (-float(len(r.args[1].strip()) + int(r.args[1].strip())), False) for r in requests
            ]

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

        def generate_until(self, requests):
            return [" 2 <b>two</b>" for _ in requests]

    tmp = tmp_path_factory.mktemp("lm_eval_tasks")
    data = tmp / "docs.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    (tmp / "t_gen.yaml").write_text(GEN_YAML.format(data=data))
    (tmp / "t_mc.yaml").write_text(MC_YAML.format(data=data))
    tm = TaskManager(include_defaults=False, include_path=str(tmp))
    return simple_evaluate(
        model=RuleLM(),
        tasks=["t_gen", "t_mc"],
        task_manager=tm,
        log_samples=True,
        random_seed=0,
        numpy_random_seed=0,
        torch_random_seed=0,
        fewshot_random_seed=0,
    )


def test_simple_evaluate_output_round_trips(lm_eval_output: dict, tmp_path: Path) -> None:
    meta = RunFacts(
        model=ModelInfo(preset="rule", backend="llada", resolved_id="rule/lm", revision="r1",
                        dtype="float32", family="base", chat_template=False,
                        special_tokens={"mask_id": 5}),
        settings={"t_gen": {"steps": 4, "gen_length": 8}},
        seeds=Seeds(request_seed_base=0),
        device="cpu",
        limit=None,
        wall_time_s=1.0,
        argv=("evalsuite", "run"),
        environment=collect_environment(),
        totals=Totals(nfe=16, generated_tokens=12),
    )
    stats = {("t_gen", i): {"nfe": 4, "seconds": 0.01, "generated_tokens": 3} for i in range(4)}
    run = read_run(write_run_from_lm_eval(tmp_path, lm_eval_output, meta, stats))
    rec = run.record
    assert rec.tasks["t_gen"].version == "3.0" and rec.tasks["t_gen"].settings["steps"] == 4
    assert rec.environment["packages"]["lm_eval"] == "0.4.13"
    for name, lm_results in lm_eval_output["results"].items():
        for key, mv in rec.tasks[name].metrics.items():
            assert mv.value == pytest.approx(lm_results[key])
            samples = run.samples_of(name)
            assert sum(s.scores[key] for s in samples) / len(samples) == pytest.approx(mv.value)
    gen = run.samples_of("t_gen")
    assert [s.doc_id for s in gen] == [0, 1, 2, 3]
    assert gen[2].prompt == "Q: <script>alert(1)</script>\nA:"
    assert gen[2].output == " 2 <b>two</b>" and gen[2].extracted["strict"] == "2"
    assert (gen[0].nfe, gen[0].generated_tokens) == (4, 3)
    mc = run.samples_of("t_mc")
    assert mc[1].target == "[1]  5" and mc[1].extracted["none"] == "[0]  4"
    assert mc[1].nfe is None
