#!/usr/bin/env python3
"""Mutation-score gate over a cargo-mutants run.

    .ci/mutants.py OUTCOMES_JSON FLOOR_PERCENT EQUIVALENTS_FILE

Reads cargo-mutants' `outcomes.json`, takes the surviving ("missed") mutants, removes those listed
in EQUIVALENTS_FILE as equivalent (a mutant no test can catch because it does not change
behaviour), and fails when caught / (caught + missed) is under FLOOR_PERCENT. A listed equivalent
that no longer survives (it is caught now, or the code moved) also fails the gate, so the list stays
true and the floor keeps meaning something.

EQUIVALENTS_FILE has one mutant per line, as cargo-mutants names it but without the line and
column, then ` # ` and the reason, e.g.

    engine/src/flow.rs: replace > with >= in push_frame  # both bounds are checked again below
"""

import json
import os
import re
import sys

LOCATION = re.compile(r"^(?P<file>[^:]+):\d+:\d+: (?P<what>.*)$")


def unlocated(name):
    """`engine/src/a.rs:12:5: replace x` -> `engine/src/a.rs: replace x`."""
    m = LOCATION.match(name)
    return f"{m['file']}: {m['what']}" if m else name


def read_equivalents(path):
    listed = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, sep, reason = line.partition("  # ")
            if not sep or not reason.strip():
                sys.exit(f"{path}:{number}: every equivalent mutant needs '  # reason'")
            listed[name.strip()] = reason.strip()
    return listed


def main():
    outcomes_path, floor, equivalents_path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    with open(outcomes_path, encoding="utf-8") as f:
        outcomes = json.load(f)
    counts = {"caught": 0, "missed": 0, "unviable": 0, "timeout": 0}
    missed = []
    timed_out = set()
    files = set()
    ran = set()
    for outcome in outcomes["outcomes"]:
        scenario = outcome["scenario"]
        if not isinstance(scenario, dict) or "Mutant" not in scenario:
            continue  # the baseline build
        summary = outcome["summary"]
        mutant = scenario["Mutant"]
        files.add(mutant["file"])
        name = mutant.get("name") or f"{mutant['file']}:{mutant['span']['start']['line']}:{mutant['span']['start']['column']}: {mutant.get('description', '')}"
        ran.add(unlocated(name))
        if summary == "CaughtMutant":
            counts["caught"] += 1
        elif summary == "MissedMutant":
            counts["missed"] += 1
            missed.append(name)
        elif summary == "Unviable":
            counts["unviable"] += 1
        elif summary == "Timeout":
            # A mutant that makes the tests hang is caught by the timeout.
            counts["timeout"] += 1
            timed_out.add(unlocated(name))
        else:
            sys.exit(f"unexpected outcome {summary!r} for {name}")
    equivalents = read_equivalents(equivalents_path)
    real_misses = [m for m in missed if unlocated(m) not in equivalents]
    survived = {unlocated(m) for m in missed}
    # Only entries about the files this run mutated can be stale. A listed one that timed out
    # says the machine was slow, not that a test catches it: reported, not stale. A run of one
    # shard (MUTANTS_SHARD set) holds only some of a file's mutants, so there an entry is stale
    # only when it ran and was caught; a whole run also flags entries whose mutant is gone.
    sharded = bool(os.environ.get("MUTANTS_SHARD"))
    slow = [e for e in equivalents if e in timed_out and e not in survived]
    stale = [
        e
        for e in equivalents
        if e.split(":", 1)[0] in files
        and e not in survived
        and e not in timed_out
        and (e in ran or not sharded)
    ]
    caught = counts["caught"] + counts["timeout"]
    scored = caught + len(real_misses)
    score = 100.0 * caught / scored if scored else 100.0
    print(
        f"mutants: {caught} caught ({counts['timeout']} by timeout), {counts['missed']} missed "
        f"({counts['missed'] - len(real_misses)} listed as equivalent), {counts['unviable']} unviable"
    )
    for m in real_misses:
        print(f"  MISSED: {m}")
    for e in slow:
        print(f"  equivalent timed out (a slow machine, or it hangs now; look at its log): {e}")
    for e in stale:
        print(f"  STALE equivalent (no longer survives; remove it from {equivalents_path}): {e}")
    print(f"mutation score: {score:.1f}% (floor {floor:.0f}%)")
    if score < floor or stale:
        sys.exit(1)


if __name__ == "__main__":
    main()
