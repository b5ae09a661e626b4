"""The soak run: start everything, measure the maximum, hold half of it
while the faults run, judge, report (``make soak``)."""

from __future__ import annotations

import argparse
import csv
import gc
import datetime
import os
import signal
import sys
import threading
import time

import harness
from envoy_process import envoy_version

from envoy_process import envoy_pid

from soak.cache_fill import CacheFill, fill_cache
from soak.faults import FAULTS, Conductor, Minter, parse_faults
from soak.monitor import SAMPLE_SECONDS, Monitor
from soak.records import PASS, Ledger, Result, Timeline, error_note
from soak.report import mb, render
from soak.services import CONCURRENCY, Services
from soak.traffic import USERS, Traffic, wait_ready
from soak.workers import LoadProcesses
from soak.verdict import (checks, first_refusal, judge, memory_verdict, phase_windows, upstream_violations,
                          warm_up_seconds, window)

sys.path.insert(0, str(harness.REPO_ROOT / "scripts"))
import report_section  # noqa: E402

# Load processes: one could not make and judge the mix as fast as Envoy
# serves it here (see soak.workers); more than the CPUs only adds switching.
LOAD_PROCESSES = 2
IDP_CLUSTER_STATS = ("upstream_rq_total", "upstream_rq_2xx", "upstream_rq_5xx", "upstream_cx_connect_fail",
                     "upstream_cx_destroy_remote", "upstream_cx_destroy_remote_with_active_rq",
                     "upstream_rq_pending_failure_eject", "upstream_rq_timeout")


def paced(interval: float, stop: threading.Event, step, ledger: Ledger) -> None:
    """Call ``step`` every ``interval`` seconds until stop. A bug in a step is
    recorded (an unexplained result), so the thread never dies quietly."""
    nxt = time.monotonic()
    while not stop.is_set():
        try:
            step()
        except Exception as e:  # noqa: BLE001 - recorded, the thread goes on
            t = ledger.now()
            ledger.add(Result(f"soak client error in {getattr(step, '__name__', step)}", PASS, t, t, None, False,
                              note=error_note(e)))
        nxt += interval
        stop.wait(max(0.0, nxt - time.monotonic()))


def run(args) -> int:
    duration = float(args.duration)
    stop = threading.Event()
    services = Services()
    threads: list[threading.Thread] = []
    load: LoadProcesses | None = None
    try:
        services.start(args.concurrency, args.access_log)
        gw, idp = services.gw, services.idp
        ledger, timeline = Ledger(time.monotonic()), Timeline()
        print(f"soak: Envoy pid {gw.envoy.pid}, listener {gw.port}, admin {gw.admin_port}, IdP {idp.port} "
              f"(via {services.proxy.port}); log {gw.envoy.log_path}; signing {args.users} users' tokens", flush=True)
        traffic = Traffic(gw, idp, services.keys, ledger, timeline, users=args.users, run_seconds=duration)
        wait_ready(gw, traffic)
        gc.freeze()  # the users' tokens and the set-up stay out of every later collection
        # Forked now, before the threads below start (see soak.workers).
        load = LoadProcesses(traffic, ledger, args.load_processes)
        pid = envoy_pid(gw.envoy.pid) or gw.envoy.pid
        fill: CacheFill | None = None
        if args.cache_fill:
            fill = fill_cache(load, gw, args.concurrency, args.connections)
            print(f"soak: cache fill: {fill.describe()}", flush=True)
        burst = 15.0 if duration >= 300 else 5.0
        ledger.rebase(time.monotonic() + args.burst_warm_up + burst)  # the held load begins at 0
        threads = [threading.Thread(target=paced, name="logins", daemon=True,
                                    args=(args.login_interval, stop, traffic.sso_login, ledger)),
                   Minter(traffic, timeline, stop)]
        for t in threads:
            t.start()
        maximum = load.burst(args.connections, args.burst_warm_up, burst, pid)
        target = maximum * args.share
        print(f"soak: maximum {maximum:.0f} req/s (closed loop, {args.connections} connections over "
              f"{args.load_processes} processes, {burst:.0f} s); holding {target:.0f} req/s for {duration:.0f} s",
              flush=True)
        conductor = Conductor(gw, idp, services.proxy, services.keys, traffic, ledger, timeline, duration, stop,
                              only=args.faults)
        monitor = Monitor(gw, ledger, stop, interval=args.sample_seconds)
        monitor.alive = monitor.check()
        monitor.progress = lambda m: progress(ledger, m, load)
        progress.last = load.answers() + ledger.count()  # type: ignore[attr-defined]  # (the rate's start)
        lds_before = gw.stats("listener_manager.lds.").get("listener_manager.lds.update_success", 0)
        conductor.start()
        monitor.start()
        threads += [conductor, monitor]
        load.hold(target, duration, pid)  # (and gathers the load processes' results)
        stop.set()
        for t in threads:
            t.join(timeout=90)
        time.sleep(1.0)  # let the echo finish recording late requests
        alive = monitor.alive and monitor.check()
        ctx = conclude(args, duration, ledger, timeline, conductor, monitor, services, traffic, load, alive,
                       lds_before, fill)
    finally:
        stop.set()
        if load is not None:
            load.stop()
        services.stop()
    report = render(ctx)
    # Printed first: a refusal to write (a tree changed during the run) must
    # not lose a 10-minute run's result.
    print(report)
    if args.write:
        report_section.replace_section("soak", report)
    return 0 if ctx["passed"] else 1


def progress(ledger: Ledger, monitor: Monitor, load: LoadProcesses) -> None:
    """Every 30 s: results so far (the load processes' and this one's),
    their rate over the last 30 s, and Envoy's RSS."""
    total = load.answers() + ledger.count()
    bad = sum(load.tally[2 * i + 1] for i in range(load.count)) + sum(1 for r in ledger.snapshot() if not r.ok)
    rate = (total - getattr(progress, "last", 0)) / 30
    progress.last = total  # type: ignore[attr-defined]
    s = monitor.samples[-1] if monitor.samples else None
    rss = f"{mb(s.rss_kb, 1024)} MB" if s else "?"
    print(f"  {ledger.now():6.0f} s  requests {total:7d} ({rate:.0f}/s)  not as expected {bad:5d}  RSS {rss}",
          flush=True)


def conclude(args, duration, ledger, timeline, conductor, monitor, services, traffic, load, alive,
             lds_before, fill) -> dict:
    gw = services.gw
    warm_up = warm_up_seconds(duration)
    results = ledger.snapshot()
    timeline.first_revoked_refusal = first_refusal(results, timeline)
    judged = judge(results, timeline)
    upstream = upstream_violations(ledger, services.echo.probes())
    memory = memory_verdict(monitor.samples, warm_up)
    monitor.write_csv(gw.envoy.workdir / "memory.csv")
    write_results(results, gw.envoy.workdir / "results.csv")
    try:
        counters = {k.removeprefix("wasmcustom.edge_auth_"): v for k, v in gw.stats("wasmcustom.edge_auth_").items()}
        idp_cluster = {k.removeprefix("cluster.idp."): v for k, v in gw.stats("cluster.idp.").items()
                       if k.removeprefix("cluster.idp.") in IDP_CLUSTER_STATS}
    except OSError:
        counters, idp_cluster = {}, {}
    faults = sorted(timeline.faults, key=lambda f: f.start)
    first_fault = faults[0].start if faults else duration
    verdict = checks(results=results, judged=judged, upstream=upstream, memory=memory, load=load.stats,
                     kinds=list(traffic.mix), alive=alive, failures=monitor.failures, conductor=conductor,
                     timeline=timeline, counters=counters, users_sent=len(traffic.users.sent), fill=fill)
    return {
        "duration": duration, "actual": min(ledger.now(), duration), "warm_up": warm_up,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "envoy": envoy_version(), "concurrency": args.concurrency, "cpus": os.cpu_count(),
        "login_interval": args.login_interval, "users": args.users, "load": load.stats,
        "results": results, "judged": judged, "memory": memory, "checks": verdict,
        "passed": all(ok for _, ok, _ in verdict), "timeline": timeline, "conductor_errors": conductor.errors,
        "counters": counters, "idp_cluster": idp_cluster, "lds_before": lds_before,
        "phases": phase_windows(results, faults, duration), "span": min(30.0, max(3.0, duration / 15)),
        "baseline": window(results, 0.0, first_fault), "first_fault": first_fault, "fill": fill,
        "sample_seconds": args.sample_seconds, "full_plan": args.faults is None,
    }


def write_results(results: list[Result], path) -> None:
    """Every request's result, for a closer look after a run."""
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["kind", "expect", "t0", "t1", "status", "ok", "let_through", "note"])
        for r in results:
            out.writerow([r.kind, r.expect, f"{r.t0:.3f}", f"{r.t1:.3f}", r.status, int(r.ok), int(r.let_through),
                          r.note])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="e2e/soak", description="Soak and fault run of edge-auth in a real Envoy.")
    ap.add_argument("--duration", type=float, default=600, help="seconds of held load (default 600)")
    ap.add_argument("--share", type=float, default=0.55,
                    help="share of the measured maximum to hold (default 0.55; the check wants >= 0.50 answered)")
    ap.add_argument("--connections", type=int, default=64, help="connections of the closed-loop burst (default 64)")
    ap.add_argument("--burst-warm-up", type=float, default=2.0, help="seconds before the burst is counted")
    ap.add_argument("--users", type=int, default=USERS, help=f"distinct IdP users (default {USERS})")
    ap.add_argument("--login-interval", type=float, default=3, help="seconds between browser logins (default 3)")
    ap.add_argument("--concurrency", type=int, default=CONCURRENCY, help="Envoy worker threads (default 2)")
    ap.add_argument("--load-processes", type=int, default=LOAD_PROCESSES,
                    help=f"Python processes sending the load (default {LOAD_PROCESSES})")
    ap.add_argument("--no-cache-fill", dest="cache_fill", action="store_false",
                    help="skip filling the verified-token cache before the load (and its memory check)")
    ap.add_argument("--no-write", dest="write", action="store_false",
                    help="print the report only, leave BENCHMARKS.md alone (short try-outs)")
    ap.add_argument("--access-log", action="store_true", help="Envoy's access log in its log (to look into a run)")
    ap.add_argument("--faults", type=parse_faults, default=None, metavar="NAME[@SECONDS],...",
                    help="developer try-outs: only these faults (of " + ", ".join(FAULTS) + "), each at its "
                    "second of the held load or spread over the run's middle; '' for none (default: the full plan)")
    ap.add_argument("--sample-seconds", type=float, default=SAMPLE_SECONDS,
                    help=f"seconds between Envoy's memory samples (default {SAMPLE_SECONDS:.0f})")
    args = ap.parse_args(argv)
    if args.duration < 30 or not 0 < args.share <= 1 or args.connections < 1 or args.load_processes < 1 \
            or args.sample_seconds <= 0:
        ap.error("need --duration >= 30, 0 < --share <= 1, --connections >= 1, --load-processes >= 1, "
                 "--sample-seconds > 0")
    return args


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not harness.wasm_path().is_file():
        print(f"soak: {harness.wasm_path()} is missing: run `make build`", file=sys.stderr)
        return 2
    # SIGTERM stops the run like Ctrl-C: the finally blocks stop every process.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return 130
