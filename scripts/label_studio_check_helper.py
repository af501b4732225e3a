"""The HTTP API part of scripts/label_studio_check.sh (runs in runs/ls_venv: needs `requests`).

Waits for /health, authenticates (the legacy token given to `label-studio start --user-token`
first; since 1.17 a new organisation has legacy tokens disabled, so then a personal access token:
log in with the session, create a PAT (a JWT refresh token) at /api/token/, exchange it at
/api/token/refresh/ for an access token, `Authorization: Bearer`), creates a project with the
labeling config, imports the tasks, annotates a few tasks (their predictions with the first label
changed), and exports the project as JSON (all tasks).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import requests


def wait_health(url: str, seconds: float = 180) -> None:
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            r = requests.get(f"{url}/health", timeout=5)
            if r.ok:
                print(f"health: {r.text.strip()} after {time.time() - t0:.0f}s", flush=True)
                return
        except requests.RequestException:
            pass
        time.sleep(2)
    raise SystemExit(f"no /health answer in {seconds:.0f}s")


def auth(url: str, email: str, password: str, token: str) -> requests.Session:
    s = requests.Session()
    r = s.get(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}, timeout=10)
    print(f"legacy token: HTTP {r.status_code} {r.text[:120]!r}", flush=True)
    if r.ok:
        s.headers["Authorization"] = f"Token {token}"
        return s
    # Personal access token: session login (CSRF), create a PAT, exchange it for an access token.
    login = s.get(f"{url}/user/login/", timeout=10)
    csrf = s.cookies.get("csrftoken")
    r = s.post(f"{url}/user/login/", data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
               headers={"Referer": f"{url}/user/login/", "X-CSRFToken": csrf or ""}, timeout=10)
    print(f"session login: GET {login.status_code}, POST {r.status_code} -> {r.url}", flush=True)
    csrf = s.cookies.get("csrftoken") or csrf
    r = s.post(f"{url}/api/token/", headers={"X-CSRFToken": csrf or "", "Referer": url}, timeout=10)
    print(f"create PAT: HTTP {r.status_code} {r.text[:80]!r}...", flush=True)
    r.raise_for_status()
    refresh = r.json().get("token") or r.json().get("refresh")
    r = requests.post(f"{url}/api/token/refresh/", json={"refresh": refresh}, timeout=10)
    print(f"refresh -> access: HTTP {r.status_code}", flush=True)
    r.raise_for_status()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {r.json()['access']}"
    who = api.get(f"{url}/api/current-user/whoami", timeout=10)
    print(f"bearer whoami: HTTP {who.status_code} {who.json().get('email')}", flush=True)
    who.raise_for_status()
    return api


def main() -> int:
    p = argparse.ArgumentParser()
    for a in ("url", "email", "password", "token", "tasks", "config", "export"):
        p.add_argument(f"--{a}", required=True)
    p.add_argument("--annotate", type=int, default=3)
    args = p.parse_args()
    url = args.url
    wait_health(url)
    api = auth(url, args.email, args.password, args.token)

    r = api.post(f"{url}/api/projects", json={"title": "nerbatch review check",
                                               "label_config": Path(args.config).read_text()}, timeout=30)
    print(f"create project: HTTP {r.status_code}", flush=True)
    r.raise_for_status()
    pid = r.json()["id"]
    tasks = json.loads(Path(args.tasks).read_text(encoding="utf-8"))
    r = api.post(f"{url}/api/projects/{pid}/import", json=tasks, timeout=120)
    print(f"import {len(tasks)} tasks: HTTP {r.status_code} {r.text[:200]}", flush=True)
    r.raise_for_status()

    r = api.get(f"{url}/api/tasks", params={"project": pid, "page_size": 1000, "fields": "all"}, timeout=30)
    r.raise_for_status()
    body = r.json()
    listed = body["tasks"] if isinstance(body, dict) else body
    print(f"tasks in project: {len(listed)}; predictions on the first: {len(listed[0].get('predictions') or [])}",
          flush=True)
    annotated = {"doc_ids": [], "spans": {}}
    for task in listed[:args.annotate]:
        full = api.get(f"{url}/api/tasks/{task['id']}", timeout=30).json()
        preds = full.get("predictions") or []
        result = [dict(x, value=dict(x["value"])) for x in (preds[0]["result"] if preds else [])]
        for x in result:
            x.pop("score", None)
        if result:  # the annotator relabels the first span
            old = result[0]["value"]["labels"][0]
            result[0]["value"]["labels"] = ["ORG" if old != "ORG" else "PER"]
        r = api.post(f"{url}/api/tasks/{task['id']}/annotations/", json={"result": result, "was_cancelled": False},
                     timeout=30)
        print(f"annotate task {task['id']} ({full['data']['doc_id']}, {len(result)} spans): HTTP {r.status_code}",
              flush=True)
        r.raise_for_status()
        annotated["doc_ids"].append(full["data"]["doc_id"])
        annotated["spans"][full["data"]["doc_id"]] = [[x["value"]["start"], x["value"]["end"], x["value"]["labels"][0]]
                                                      for x in result]
    r = api.get(f"{url}/api/projects/{pid}/export", params={"exportType": "JSON", "download_all_tasks": "true"},
                timeout=120)
    print(f"export: HTTP {r.status_code}, {len(r.content):,} bytes", flush=True)
    r.raise_for_status()
    exported = r.json()
    Path(args.export).write_text(json.dumps(exported, ensure_ascii=False, indent=1), encoding="utf-8")
    Path(args.export).with_name("annotated.json").write_text(json.dumps(annotated), encoding="utf-8")
    n_ann = sum(1 for t in exported if t.get("annotations"))
    print(f"exported {len(exported)} tasks, {n_ann} with annotations", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
