"""The announcement before explain and evaluate: advice on threads when the machine is busy."""

from __future__ import annotations

from probe.pipeline.plan import thread_advice


def test_busy_machine_with_several_threads_gets_the_advice():
    advice = thread_advice(load=6.2, cores=2, threads=2)
    assert "load 6.2 on 2 cores" in advice and "--threads 1" in advice


def test_no_advice_on_a_quiet_machine_or_with_one_thread():
    assert thread_advice(load=0.5, cores=16, threads=16) == ""
    assert thread_advice(load=9.0, cores=2, threads=1) == ""
