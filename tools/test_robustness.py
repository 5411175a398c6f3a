"""Robustness tests (issue 19): memory exhaustion, fault injection at every step, misuse.

Imported by test_qemu.py, which registers these tests after its own. Every scenario ends
at the prompt with the free-page count (caches drained, `drop_caches`) equal to its value
before, and no `Kernel panic` (in particular not Rust's `memory allocation of N bytes
failed`, the last-resort handler that no console input may reach).

The fault-injection sweep fails the Nth allocation, for N = 1, 2, ... until the command no
longer reaches N (the failure is not injected), for every allocating console command and
both injection points (`fail_page_alloc`, `fail_slab`). Where a command makes too many
allocations for every N to be tried in bounded time (`sweep vmalloc`: ~29 million page
allocations; `bench`: ~10,000), N runs over 1..DENSE and then a geometric sample up to
the point where the command is no longer reached (or a bound). Totals are printed.
"""
import os
import re
import subprocess
import time

from qemu_run import PROMPT

GFP_MODES = ["GFP_KERNEL", "GFP_ATOMIC", "GFP_NOWAIT", "GFP_KERNEL|__GFP_ZERO", "__GFP_MEMALLOC"]
REPORTS = ["meminfo", "buddyinfo", "pagetypeinfo", "slabinfo", "vmallocinfo", "allocs", "help"]
PANIC = re.compile(r"Kernel panic|memory allocation of \d+ bytes failed")


def register(test, boot, check):
    def free_pages(q):
        out = q.command("drop_caches")
        m = re.search(r"^drop_caches: (\d+) pages free$", out, re.M)
        check(m, "drop_caches printed no count", out)
        return int(m.group(1))

    def no_panic(q, what):
        m = PANIC.search(q.out)
        check(not m, f"{what}: kernel panic", q.out[max(0, (m.start() if m else 0) - 3000):])

    def stress_ok(q, cmd="stress"):
        out = q.command(cmd, 240)
        check(re.search(r"^stress: OK$", out, re.M), f"{cmd} not OK", out)
        return out

    def exhaust(q, gfp):
        """Allocates blocks of order 16 down to 0 with `gfp` until each order fails."""
        held = 0
        for order in range(16, -1, -1):
            for _ in range(1024):
                out = q.command(f"alloc pages {order} {gfp}")
                if f"__get_free_pages(order {order}) failed" in out:
                    break
                check(re.search(rf"^#\d+: pages order {order} ", out, re.M) or "handle table is full" in out,
                      f"alloc pages {order} {gfp}: neither a handle nor a failure", out)
                held += 1
            else:
                check(False, f"order {order} never failed with {gfp}")
        return held

    # Functions that may allocate infallibly because they run only during boot, before
    # the console (none today).
    BOOT_ONLY = set()
    INFALLIBLE = re.compile(r"handle_alloc_error|raw_vec::handle_error|alloc_error_handler|capacity_overflow")

    @test
    def image_has_no_infallible_allocation(image):
        """The kernel image links no infallible allocation: no function calls the
        allocation-error handler (what `Vec::push`, `String` growth and `format!` reach
        when memory is short). Fallible allocation (a null check) is allowed."""
        elf = os.path.join(os.path.dirname(os.path.abspath(image)), "target", "aarch64-unknown-none-softfloat",
                           "release", "kernel")
        check(os.path.exists(elf), f"no kernel ELF beside the image at {elf}")
        sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True, check=True).stdout.strip()
        host = re.search(r"^host: (\S+)", subprocess.run(["rustc", "-vV"], capture_output=True, text=True,
                                                          check=True).stdout, re.M).group(1)
        objdump = os.path.join(sysroot, "lib", "rustlib", host, "bin", "llvm-objdump")
        dis = subprocess.run([objdump, "-d", "-C", "--no-show-raw-insn", elf], capture_output=True, text=True,
                             check=True).stdout
        check("<kernel_main>:" in dis or "kernel_main" in dis, "disassembly has no kernel_main", dis[:2000])
        fn, callers = None, set()
        for line in dis.splitlines():
            m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
            if m:
                fn = m.group(1)
            elif re.search(r"\s(bl|b)\s", line) and INFALLIBLE.search(line):
                callers.add(fn)
        bad = sorted(c for c in callers if not any(c.startswith(b) for b in BOOT_ONLY))
        check(not bad, "infallible allocation reachable from: " + "; ".join(bad))

    @test
    def handle_table_full_line_editing_kmalloc_zero(image):
        with boot(image) as q:
            base = free_pages(q)
            for i in range(1, 1025):
                out = q.command("alloc kmalloc 8")
                check(out.startswith(f"#{i}: kmalloc 8 bytes"), f"allocation {i}", out)
            out = q.command("alloc pages 2")
            check("alloc: the handle table is full (1024 held): freed the allocation again" in out, "full table", out)
            out = q.command("release all", 120)
            check(len(re.findall(r"^freed #\d+$", out, re.M)) == 1024, "free all", out[-2000:])
            check(free_pages(q) == base, "the allocation the table could not hold was not freed")
            # An overlong line is refused, but after backspacing what the screen shows runs.
            q.send("x" * 200 + "\x7f" * 128 + "uptime\r")
            q.expect(r"up \d+\.\d{6} s", 20)
            q.expect("^" + re.escape(PROMPT), 20)
            out = q.command("alloc kmalloc 0")
            check(re.search(r"^#\d+: kmalloc 0 bytes \(ksize 0\) at 0x10, ZERO_SIZE_PTR \(no memory\), mode:", out, re.M),
                  "kmalloc 0", out)
            q.command("release all")
            no_panic(q, "handle table")

    @test
    def exhaustion_every_gfp_mode_then_reports_free_all_stress(image):
        with boot(image) as q:
            base = free_pages(q)
            for gfp in GFP_MODES:
                held = exhaust(q, gfp)
                check(held > 0, f"{gfp}: nothing allocated")
                low = free_pages(q)
                check(low < base // 100, f"{gfp}: memory not exhausted ({low} of {base} pages free)")
                print(f"  {gfp}: {held} blocks held, {low} of {base} pages left free", flush=True)
                for r in REPORTS:
                    out = q.command(r)
                    check(out.strip(), f"{r} printed nothing after {gfp} exhaustion", out)
                no_panic(q, f"reports after {gfp} exhaustion")
                # stress with (almost) no memory: every failure is counted, nothing breaks.
                stress_ok(q, "stress 200")
                out = q.command("release all", 120)
                check(len(re.findall(r"^freed #\d+$", out, re.M)) == held, f"{gfp}: free all freed the wrong count", out)
                stress_ok(q)
                check(free_pages(q) == base, f"{gfp}: free pages did not return to {base}")
                no_panic(q, f"{gfp} exhaustion")

    def hold_largest_vmalloc(q):
        """Holds the largest vmalloc, then fills what is left until even 4 KiB fails."""
        for mib in range(960, 800, -1):
            out = q.command(f"alloc vmalloc {mib}M", 120)
            if re.search(r"^#\d+: vmalloc", out, re.M):
                break
        else:
            check(False, "no large vmalloc succeeded", q.out)
        for size in ["1M", "64K", "4K"]:
            for _ in range(64):
                if "failed" in q.command(f"alloc vmalloc {size}", 60):
                    break
        check("alloc: vmalloc(4096) failed" in q.command("alloc vmalloc 4K"), "vmalloc not exhausted")
        return mib

    # Every console command that returns (reboot, poweroff and the fatal crash types do
    # not; poweroff is run last).
    EVERY_COMMAND = REPORTS + [
        "uptime", "allocs", "alloc pages 0", "alloc pages 3 GFP_ATOMIC", "alloc pages 0 __GFP_MEMALLOC",
        "alloc kmalloc 64", "alloc kmalloc 3000 GFP_ATOMIC", "alloc kmalloc 100K", "alloc kmalloc 0",
        "alloc vmalloc 1M", "fail_page_alloc 1", "alloc pages 0", "fail_page_alloc off",
        "fail_slab 1", "alloc kmalloc 64", "fail_slab off", "fail_slab probability=50 times=3", "alloc kmalloc 8",
        "alloc kmalloc 8", "alloc kmalloc 8", "alloc kmalloc 8", "fail_slab off", "drop_caches",
        "crash", "crash double-free", "crash use-after-free", "crash bad-page-free",
        "sweep pages", "sweep kmalloc", "sweep vmalloc", "sweep", "stress 200", "bench 1000", "unknown-command",
        "fail_page_alloc probability=30 interval=2 times=5", "alloc pages 0 __GFP_MEMALLOC", "stress 100",
        "fail_page_alloc off",
        "alloc pages 99", "release 999",
    ]

    @test
    def after_largest_vmalloc_every_command(image):
        with boot(image) as q:
            base = free_pages(q)
            mib = hold_largest_vmalloc(q)
            for cmd in EVERY_COMMAND:
                out = q.command(cmd, 240)
                no_panic(q, f"{cmd} after holding the largest vmalloc ({mib} MiB)")
                check(out.strip() or cmd == "drop_caches", f"{cmd} printed nothing", out)
            # The sweep phases ran with no memory: their summary lines are still there.
            check("sweep: __get_free_pages max order=" in q.out and "sweep: kmalloc max size=" in q.out
                  and "sweep: vmalloc max size=" in q.out, "a sweep summary line is missing", q.out[-20000:])
            q.command("release all", 120)
            stress_ok(q)
            check(free_pages(q) == base, f"free pages did not return to {base}")
            q.send("poweroff\r")
            check(q.wait_exit(30) == 0, "poweroff after the scenario")

    @test
    def crash_misuse_loop_then_stress(image):
        with boot(image) as q:
            base = free_pages(q)
            for i in range(100):
                for kind in ["double-free", "use-after-free", "bad-page-free"]:
                    out = q.command(f"crash {kind}")
                    check("refused it and carries on" in out, f"crash {kind} #{i}", out)
                check("allocator intact" in out, f"bad-page-free #{i}", out)
            no_panic(q, "crash misuse loop")
            out = q.command("slabinfo")
            stress_ok(q)
            stress_ok(q, "stress 2000")
            check(free_pages(q) == base, f"free pages did not return to {base} after the misuse loop")

    # ------------------------------------------------------------ fault-injection sweep
    # (command, timeout, dense, bounds): N = 1..dense for every N, then doubling; always
    # until the command no longer reaches N, or N passes the bound for that knob (None:
    # no bound). `sweep vmalloc` is bounded: reaching its last allocation means running
    # the whole 33-second sweep; the early steps and the bisection after a failure are
    # what differ from N to N. `bench` (1000 rounds at least: ~2,000 page and ~6,000
    # slab allocations) is sampled past `dense`: its allocations are the same loop's.
    # `stress 10 42` (a fixed seed; ~1,200 page allocations, most of them vmalloc pages)
    # runs for every N.
    INJECTED = [
        ("alloc pages 0", 20, None, None),
        ("alloc pages 4 GFP_ATOMIC", 20, None, None),
        ("alloc kmalloc 64", 20, None, None),
        ("alloc kmalloc 3000 GFP_ATOMIC", 20, None, None),
        ("alloc kmalloc 100K", 20, None, None),
        ("alloc vmalloc 256K", 20, None, None),
        ("crash double-free", 20, None, None),
        ("crash use-after-free", 20, None, None),
        ("crash bad-page-free", 20, None, None),
        ("sweep pages", 60, None, None),
        ("sweep kmalloc", 60, None, None),
        ("stress 10 42", 120, None, None),
        ("sweep vmalloc", 240, 24, {"fail_page_alloc": 1 << 20, "fail_slab": 48}),
        ("bench 1000", 240, 24, None),
    ]
    totals = {"runs": 0, "injected": 0}

    def injected_count(out, knob):
        m = re.search(rf"^{knob}: attempts \d+ injected (\d+)$", out, re.M)
        check(m, f"{knob} printed no counters", out)
        return int(m.group(1))

    def inject_sweep(q, knob, cmd, timeout, dense, bound, base):
        n, runs, injected, misses = 1, 0, 0, 0
        bound = bound.get(knob) if isinstance(bound, dict) else bound
        before = injected_count(q.command(knob), knob)
        while True:
            if bound is not None and n > bound:
                break
            q.command(f"{knob} {n}")
            out = q.command(cmd, timeout)
            if cmd.startswith("stress"):
                check(re.search(r"^stress: OK$", out, re.M), f"{knob} {n} then {cmd}", out)
            # `off` disarms and prints the counters: the failure was injected (the
            # command reached N) if the count went up.
            now = injected_count(q.command(f"{knob} off"), knob)
            reached = now > before
            before = now
            # A sweep phase that met the injected failure says so and prints no limit;
            # one that did not (N beyond its allocations) prints its limit.
            phase = {"sweep pages": ("__get_free_pages", "max order="), "sweep kmalloc": ("kmalloc", "max size="),
                     "sweep vmalloc": ("vmalloc", "max size=")}.get(cmd)
            if phase:
                injected_line = f"sweep: {phase[0]}: stopped by 1 injected failure (fail_page_alloc/failslab), not out of memory: no result"
                result_line = f"sweep: {phase[0]} {phase[1]}"
                if reached:
                    check(injected_line in out and result_line not in out, f"{knob} {n} then {cmd}: not counted as injected", out)
                else:
                    check(result_line in out and "injected" not in out, f"{knob} {n} then {cmd}: no result line", out)
                check(re.search(r"sweep: leak check: free pages before=(\d+) after=\1 OK", out),
                      f"{knob} {n} then {cmd}: leak check", out)
            if cmd.startswith("alloc"):
                q.command("release all", 120)
            no_panic(q, f"{knob} {n} then {cmd}")
            got = free_pages(q)
            check(got == base, f"{knob} {n} then {cmd}: {got} pages free, {base} before", out)
            runs += 1
            misses = 0 if reached else misses + 1
            # stress is random (seeded from the timer): one run may make 10 allocations,
            # the next 750. It stops after three runs in a row that did not reach N.
            if misses >= (3 if cmd.startswith("stress") else 1):
                break
            if not reached:
                n += 1
                continue
            injected += 1
            n = n + 1 if dense is None or n < dense else n * 2
        return runs, injected

    def make_inject_test(knob):
        def t(image):
            with boot(image) as q:
                base = free_pages(q)
                summary = []
                for cmd, timeout, dense, bound in INJECTED:
                    t0 = time.monotonic()
                    runs, injected = inject_sweep(q, knob, cmd, timeout, dense, bound, base)
                    totals["runs"] += runs
                    totals["injected"] += injected
                    summary.append(f"{cmd}: {injected} ({time.monotonic() - t0:.1f}s)")
                # Then failures at random, like Linux's probability/interval/times knobs,
                # under every allocating command at once.
                q.command(f"{knob} probability=25 interval=3 times=-1")
                for cmd, timeout in [("stress 300", 240), ("sweep pages", 60), ("sweep kmalloc", 60),
                                     ("alloc vmalloc 1M", 20), ("alloc kmalloc 100", 20), ("alloc pages 2", 20),
                                     ("crash use-after-free", 20), ("bench 1000", 240)]:
                    out = q.command(cmd, timeout)
                    if cmd.startswith("stress"):
                        check(re.search(r"^stress: OK$", out, re.M), f"{knob} probability: {cmd}", out)
                st = q.command(knob)
                m = re.search(rf"^{knob}: attempts \d+ injected (\d+)$", st, re.M)
                check(m and int(m.group(1)) > 0, f"{knob} probability injected nothing", st)
                q.command(f"{knob} off")
                q.command("release all", 120)
                no_panic(q, f"{knob} probability")
                stress_ok(q)
                check(free_pages(q) == base, "free pages after the sweep")
                print(f"  {knob}: {sum(int(s.rsplit(': ', 1)[1].split()[0]) for s in summary)} failures injected over "
                      f"{len(INJECTED)} commands ({'; '.join(summary)})", flush=True)
        t.__name__ = f"fault_injection_sweep_{knob}"
        return t

    test(make_inject_test("fail_page_alloc"))
    test(make_inject_test("fail_slab"))
