"""A JSON- and dict-heavy Python workload for scripts/realworld.py and the malloc trace
(bench/traces/python-json.trace.xz): builds records, round-trips them through JSON,
groups, joins, sorts and rewrites them, and prints a deterministic summary.

    python3 bench/json_workload.py [--records N] [--rounds R]

Standard library only; the output depends only on the arguments (the random generator
is seeded, and nothing prints a set's or a hash's order).
"""
import argparse
import hashlib
import json
import random


WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()


def make_records(rng, count):
    records = []
    for index in range(count):
        tags = rng.sample(WORDS, rng.randint(1, 5))
        record = {
            "id": index,
            "name": "-".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))),
            "group": rng.choice(WORDS),
            "score": round(rng.random() * 1000, 3),
            "count": rng.randint(0, 10_000),
            "tags": tags,
            "attributes": {word: rng.randint(0, 99) for word in rng.sample(WORDS, rng.randint(0, 6))},
            "history": [rng.randint(-50, 50) for _ in range(rng.randint(0, 12))],
        }
        if rng.random() < 0.3:
            record["note"] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))
        records.append(record)
    return records


def summarize(records):
    groups = {}
    for record in records:
        entry = groups.setdefault(record["group"], {"n": 0, "score": 0.0, "tags": {}, "ids": []})
        entry["n"] += 1
        entry["score"] += record["score"]
        entry["ids"].append(record["id"])
        for tag in record["tags"]:
            entry["tags"][tag] = entry["tags"].get(tag, 0) + 1
    result = {}
    for name in sorted(groups):
        entry = groups[name]
        top = sorted(entry["tags"].items(), key=lambda item: (-item[1], item[0]))[:3]
        result[name] = {"n": entry["n"], "mean": round(entry["score"] / entry["n"], 3), "top": top,
                        "first": entry["ids"][:3]}
    return result


def rewrite(records, rng):
    # Join on tags, rebuild each record as a new dict, drop some, grow others.
    by_tag = {}
    for record in records:
        for tag in record["tags"]:
            by_tag.setdefault(tag, []).append(record["id"])
    rewritten = []
    for record in records:
        if record["id"] % 7 == 3:
            continue
        new = dict(record)
        new["related"] = sorted({other for tag in record["tags"] for other in by_tag[tag][:4]} - {record["id"]})
        new["attributes"] = {key.upper(): value * 2 for key, value in record["attributes"].items()}
        new["history"] = record["history"] + [sum(record["history"])]
        if rng.random() < 0.2:
            new["blob"] = "x" * rng.randint(100, 5000)
        rewritten.append(new)
    rewritten.sort(key=lambda record: (record["group"], -record["score"], record["id"]))
    return rewritten


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(20240601)
    records = make_records(rng, args.records)
    digest = hashlib.sha256()
    for round_index in range(args.rounds):
        text = json.dumps(records, sort_keys=True)
        digest.update(text.encode())
        loaded = json.loads(text)
        assert loaded == records
        summary = summarize(loaded)
        print(f"round {round_index}: {len(loaded)} records, {len(text)} bytes, "
              f"{len(summary)} groups, alpha={summary.get('alpha', {}).get('n', 0)}")
        records = rewrite(loaded, rng)
        pretty = json.dumps(summary, indent=1)
        digest.update(pretty.encode())
        del text, loaded
    print(f"final: {len(records)} records")
    print(f"sha256: {digest.hexdigest()}")


if __name__ == "__main__":
    main()
