"""Layer-wise mixed precision: per-layer sensitivity, a bit budget, a weight format per layer.

`plan_auto(model, calibration, options) -> Plan` searches; `Plan.to_recipe()` gives the Recipe
(exact-name overrides) that qcompile.compile() runs; `run_auto(...)` is what the CLI calls.
Nothing heavy is imported here.
"""

__all__ = ["AutoOptions", "Plan", "plan_auto", "run_auto", "sweep"]


def __getattr__(name):
    if name in ("AutoOptions", "plan_auto", "run_auto", "sweep"):
        from qcompile.mixed import auto

        return getattr(auto, name)
    if name == "Plan":
        from qcompile.mixed.plan import Plan

        return Plan
    raise AttributeError(name)
