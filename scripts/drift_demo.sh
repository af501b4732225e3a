#!/usr/bin/env bash
# Drift demo: the real model (data/models/default, runner=local) on three corpora of 400 documents,
# then run reports against the Reuters run as reference:
#   (a) Reuters-21578 (title + body)   (b) BBC News .txt files   (c) generated lowercase chat messages
# Expected: (b) vs (a) news vs news, little drift; (c) vs (a) flagged.
#   scripts/drift_demo.sh [WORKDIR]      (default output/drift_demo; reruns resume / reuse corpora)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
W=${1:-output/drift_demo}
N=${N:-400}
SHARED=${SHARED:-../shared/data/corpus}
mkdir -p "$W/corpora"

python - "$W/corpora" "$N" "$SHARED" <<'EOF'
import glob, json, os, random, shutil, sys
dest, n, shared = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# (a) Reuters: the first n records with a body, title + body kept.
path = os.path.join(dest, "reuters.jsonl")
if not os.path.exists(path):
    rows = []
    for f in sorted(glob.glob(os.path.join(shared, "reuters21578", "*.jsonl"))):
        for line in open(f, encoding="utf-8"):
            d = json.loads(line)
            if d.get("body"):
                rows.append({"id": d["id"], "title": d.get("title") or "", "body": d["body"]})
            if len(rows) >= n:
                break
        if len(rows) >= n:
            break
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(r) + "\n" for r in rows)
# (b) BBC: n/5 files from each of the five categories, copied as <category>/<file>.txt.
bbc = os.path.join(dest, "bbc")
if not os.path.isdir(bbc):
    cats = sorted(os.listdir(os.path.join(shared, "bbc")))
    cats = [c for c in cats if os.path.isdir(os.path.join(shared, "bbc", c))]
    for c in cats:
        os.makedirs(os.path.join(bbc, c))
        for f in sorted(glob.glob(os.path.join(shared, "bbc", c, "*.txt")))[: n // len(cats)]:
            shutil.copy(f, os.path.join(bbc, c, os.path.basename(f)))
# (c) chat: short lowercase messages, slang and emoji, names written in lower case.
path = os.path.join(dest, "chat.jsonl")
if not os.path.exists(path):
    rng = random.Random(7)
    names = ["john", "sarah", "mike", "emma", "dave", "priya", "tom", "lisa"]
    places = ["london", "paris", "nyc", "berlin", "the mall", "mums", "work", "uni"]
    orgs = ["google", "netflix", "uber", "tesco", "amazon", "spotify"]
    emoji = ["😂", "🙄", "🔥", "😭", "👍", "❤️", "🤷", "😅", "🎉", ""]
    templates = [
        "lol {n} u coming to {p} tonight?? {e}", "omg {n} just left {p} {e}{e}", "brb gotta call {n}",
        "ngl {o} is kinda mid rn {e}", "who's up for pizza at {p} lmao", "ok ok ill b there in 5 {e}",
        "{n} said {o} is down again smh", "tbh i cant be bothered today {e}", "heyyy wyd {e}",
        "anyone watched that new show on {o}? no spoilers pls {e}", "ugh monday again 😩", "ttyl {n} {e}",
        "gonna grab food w {n} at {p} u in?", "idk man {o} keeps charging me twice {e}",
        "k see u at {p} at 8 {e}", "lmk if {n} is coming too", "this weather in {p} is sooo bad {e}",
        "srsly who even uses {o} anymore", "haha nah {n} got lost in {p} again {e}", "gm fam {e}{e}",
    ]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            k = rng.randint(1, 3)
            msg = " ".join(rng.choice(templates).format(n=rng.choice(names), p=rng.choice(places),
                                                        o=rng.choice(orgs), e=rng.choice(emoji))
                           for _ in range(k))
            out.write(json.dumps({"id": f"chat-{i}", "text": msg}, ensure_ascii=False) + "\n")
EOF

run() {  # name, input path, extra --set ...
  local name=$1 input=$2; shift 2
  python -m extract run --config configs/extract.yaml --show 0 \
    --set runner=local --set model.path=data/models/default --set inference.threads=${THREADS:-1} \
    --set show_progress=false --set "input.path=$input" --set "output.path=$W/$name" \
    "$@"  # the default funnel (capitalised-or-caseless) runs every window of a caseless chat message
}
run reuters "$W/corpora/reuters.jsonl" --set "input.text_columns=[title, body]" --set input.shard_bytes=100000
run bbc "$W/corpora/bbc" --set input.shard_size=50
run chat "$W/corpora/chat.jsonl" --set "input.text_columns=[text]" --set input.shard_bytes=10000

python -m extract report "$W/reuters"                       # against the model's dev data
python -m extract report "$W/bbc" --reference "$W/reuters"   # news vs news
python -m extract report "$W/chat" --reference "$W/reuters"  # chat vs news
python -m extract show "$W/chat" --sample 5
python -m extract show "$W/bbc" --sample 3
for r in reuters bbc chat; do
  python - "$W/$r/report.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))["drift"]
print(sys.argv[1], "vs", d["reference"]["kind"], d["reference"].get("path", ""), "->", d["verdict"])
print("  PSI label mix %.4f (%s)" % (d["label_mix"]["psi"], d["label_mix"]["flag"]))
c = d["confidence"]
print("  PSI confidence", "n/a: " + c["note"] if c.get("psi") is None else "%.4f (%s)" % (c["psi"], c["flag"]))
for label, r in d["rates"].items():
    print("  %s %s/1k words vs %s: ratio %s (%s)" % (label, r["per_1k_words"], r["reference_per_1k_words"], r["ratio"], r["flag"]))
EOF
done
