"""DVC stage `promote`: score the champion and the FP16 candidates, set aliases by policy."""

from __future__ import annotations

import sys

from aidetector.config.schema import RunConfig
from aidetector.registry.promote import promote_by_policy
from aidetector.stages.runner import run_stage


def run(cfg: RunConfig, force: bool = False) -> None:
    """Promote by policy; promotion.json says why."""
    outcome = promote_by_policy(cfg, force=force)
    print(f"{cfg.registry.name}: {outcome.decision.reason}")
    if not outcome.applied:
        print("promote.auto is false: report only, no alias was moved")
    print(f"wrote {outcome.report}")


def main() -> int:
    return run_stage("promote", run)


if __name__ == "__main__":
    sys.exit(main())
