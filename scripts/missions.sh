#!/usr/bin/env bash
# Regenerates docs/missions.md: runs every command of the guide as written, in a scratch
# directory beside ../shared (tests/missions.rs with MICROGPT_BLESS=1), rewrites the outputs
# it shows from the fresh ones and copies the pictures it shows into docs/missions/. It fails,
# naming them, when numbers of the prose no longer occur in any output: edit those by hand.
# Without MICROGPT_BLESS the same test (part of `cargo test --release`) checks the guide.
set -euo pipefail
cd "$(dirname "$0")/.."
MICROGPT_BLESS=1 cargo test --release --test missions the_missions_guide_runs_as_written -- --nocapture
git --no-pager diff --stat -- docs/missions.md docs/missions/
