"""The in-book check refuses answers that call the book's reference, gives points, and exports.

Equations checked: eq-posterior-mean, eq-beta-tilde (through the posterior chapter's exercises).
"""
import csv
import dataclasses
import json
import sys

import torch

from dlib import diffusion, exercises, schedules
from dlib.exercises import guard


def posterior_mean(schedule, x0, x_t, t):
    a_bar = schedule.alpha_bars[t].reshape(-1, 1, 1, 1)
    a_bar_prev = schedule.alpha_bars[t - 1].reshape(-1, 1, 1, 1)
    beta = schedule.betas[t].reshape(-1, 1, 1, 1)
    return (a_bar_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_bar_prev) * x_t) / (1 - a_bar)


def test_calling_the_reference_under_any_name_fails():
    from dlib.diffusion import q_posterior as renamed
    for fn in (lambda **k: diffusion.q_posterior(**k)[0], lambda **k: renamed(**k)[0],
               lambda **k: exercises.EXERCISES["posterior-mean"].reference(**k)):
        result = exercises.check("posterior-mean", fn, verbose=False)
        assert not result and "the book's reference" in result.message, result.message
        assert result.points == 0 and result.max_points == 1


def test_reading_an_attribute_that_holds_the_answer_fails_and_the_class_is_restored():
    result = exercises.check("beta-tilde", lambda schedule: schedule.beta_tildes, verbose=False)
    assert not result and "Schedule.beta_tildes" in result.message
    assert "beta_tildes" not in vars(schedules.Schedule)          # the watch is gone
    s = schedules.linear(10)
    assert s.beta_tildes.shape == (11,)                           # and the attribute reads as before


def test_reading_the_inputs_is_allowed():
    # schedule.snr is a method of the input, not the reference of "snr-half-life"
    def half_life(schedule):
        return torch.nonzero(schedule.snr(torch.arange(1, schedule.T + 1)) < 1)[0, 0] + 1

    assert exercises.check("snr-half-life", half_life, verbose=False)


def test_a_correct_answer_earns_the_points_on_unseen_inputs_and_the_profiler_is_restored():
    def marker(frame, event, arg):
        return None

    sys.setprofile(marker)
    try:
        result = exercises.check("posterior-mean", posterior_mean, seed=1234, trials=12, verbose=False)
    finally:
        still = sys.getprofile()
        sys.setprofile(None)
    assert still is marker
    assert result and result.points == result.max_points == 1 and result.trials == 12 and result.seed == 1234


def test_results_export_to_csv_and_json(tmp_path):
    exercises.check("posterior-mean", posterior_mean, verbose=False)
    exercises.check("gaussian-kl", lambda **k: diffusion.normal_kl(**k), verbose=False)
    exercises.export(tmp_path / "r.csv")
    by_name = {r["name"]: r for r in csv.DictReader((tmp_path / "r.csv").open())}
    assert by_name["posterior-mean"]["passed"] == "True" and float(by_name["posterior-mean"]["points"]) == 1
    assert by_name["gaussian-kl"]["passed"] == "False" and float(by_name["gaussian-kl"]["points"]) == 0
    records = exercises.export(tmp_path / "out" / "r.json")
    assert json.loads((tmp_path / "out" / "r.json").read_text()) == records
    assert {r["name"] for r in records} >= {"posterior-mean", "gaussian-kl"}


def test_the_guard_records_the_reference_not_its_helpers():
    ex = exercises.EXERCISES["posterior-mean"]
    _, forbidden = guard.run_reference(ex.reference, ex.inputs(torch.Generator().manual_seed(0)))
    names = set(forbidden.codes.values())
    assert "dlib.diffusion.q_posterior" in names
    assert not any(n.endswith(("Schedule.gather", "Schedule.T", "_check_pair")) for n in names), names


def test_an_exercise_can_forbid_a_shortcut_its_reference_does_not_call(monkeypatch):
    from dlib import gaussian_chain

    ex = exercises.EXERCISES["forward-variance"]
    shortcut = lambda schedule, data_var: gaussian_chain.forward_marginals(schedule, 0.0, data_var)[1]  # noqa: E731
    monkeypatch.setitem(exercises.EXERCISES, ex.name, dataclasses.replace(
        ex, forbid=("dlib.gaussian_chain.forward_marginals", "dlib.schedules.Schedule.snr")))
    result = exercises.check(ex.name, shortcut, verbose=False)
    assert not result and "dlib.gaussian_chain.forward_marginals" in result.message
    assert exercises.check(ex.name, lambda schedule, data_var: schedule.alpha_bars * data_var + 1 - schedule.alpha_bars,
                           verbose=False)


def test_forward_variance_as_registered_refuses_the_closed_form_it_asks_for():
    from dlib import gaussian_chain

    shortcut = lambda schedule, data_var: gaussian_chain.forward_marginals(schedule, 0.0, data_var)[1]  # noqa: E731
    result = exercises.check("forward-variance", shortcut, verbose=False)
    assert not result and "dlib.gaussian_chain.forward_marginals" in result.message
