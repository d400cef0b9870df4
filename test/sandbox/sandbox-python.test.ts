import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runExecCommand } from "../../packages/cli/src/exec-command.js"
import { createSandboxPool } from "../../packages/sandbox/src/pool.js"
import type { SandboxPool } from "../../packages/sandbox/src/pool.js"
import type { Observation } from "../../packages/sandbox/src/observation.js"

const secret = "TURNWISE_SECRET_py_8d2a41"
process.env["TURNWISE_SECRET"] = secret
const seen: Array<Observation> = []
let pool: SandboxPool

/** Run Python on the pool `target()` returns, recording every observation for the final secret check. */
const pythonOn =
  (target: () => SandboxPool) => async (code: string, extra: { session?: string; timeoutMs?: number; memoryMb?: number } = {}): Promise<Observation> => {
    const obs = await target().run({ language: "python", code, ...extra })
    seen.push(obs)
    return obs
  }
const py = pythonOn(() => pool)
const failure = (obs: Observation): { kind: string; error: string; stdout: string } => {
  if (obs.ok) throw new Error(`expected a failure, got ${JSON.stringify(obs).slice(0, 500)}`)
  return obs
}

beforeAll(async () => {
  pool = createSandboxPool({ size: 2, limits: { timeoutMs: 1_500, graceMs: 400, outputLimitBytes: 4096 } })
  await pool.warm("python")
})
afterAll(async () => {
  await pool.close()
})

describe("Pyodide sandbox", () => {
  it("reports the final expression's repr and captures stdout and stderr", async () => {
    expect(await py("4821*97")).toMatchObject({ ok: true, value: "467637", stdout: "" })
    expect(await py("import sys\nprint('hi'); print('err', file=sys.stderr)\n'x'")).toMatchObject({ ok: true, stdout: "hi\nerr\n", value: "'x'" })
    expect(await py("y = 1")).not.toHaveProperty("value")
    expect(failure(await py("1/0")).error).toMatch(/ZeroDivisionError/)
    expect(failure(await py("def (:")).error).toMatch(/SyntaxError/)
  })

  it("stops `while True: pass` and a loop that swallows KeyboardInterrupt", async () => {
    expect(failure(await py("while True: pass")).kind).toBe("timeout")
    const stubborn = "while True:\n    try:\n        while True: pass\n    except KeyboardInterrupt:\n        print('caught')"
    expect(failure(await py(stubborn)).kind).toBe("timeout")
    expect(failure(await py("import time\ntime.sleep(30)")).kind).toBe("timeout")
    expect(await py("2+2")).toMatchObject({ ok: true, value: "4" })
  })

  it("reports memory exhaustion for growing lists and strings", async () => {
    // A deadline far beyond what filling 64 MB takes, so that on a busy machine the memory limit, not the clock, ends both.
    expect(failure(await py("l = []\nwhile True: l.append('x' * 1_000_000)", { memoryMb: 64, timeoutMs: 30_000 })).kind).toBe("memory")
    expect(failure(await py("s = 'ab'\nwhile True: s = s + s", { memoryMb: 64, timeoutMs: 30_000 })).kind).toBe("memory")
    expect(await py("len('x' * 1000)")).toMatchObject({ ok: true, value: "1000" })
  })

  it("keeps the lines printed before the worker was terminated", async () => {
    const stubborn = "print('started')\nwhile True:\n    try:\n        while True: pass\n    except KeyboardInterrupt:\n        pass"
    const obs = failure(await py(stubborn))
    expect(obs.kind).toBe("timeout")
    expect(obs.error).toBe("execution exceeded the 1500 ms deadline; the worker was terminated")
    expect(obs.stdout).toBe("started\n")
  })

  it("bounds recursion without crashing, even with a raised limit", async () => {
    expect(failure(await py("def f(n): return f(n + 1)\nf(0)")).error).toMatch(/RecursionError/)
    const raised = failure(await py("import sys\nsys.setrecursionlimit(100_000)\ndef f(n): return f(n + 1)\nf(0)", { timeoutMs: 5_000 }))
    expect(["error", "memory"]).toContain(raised.kind) // deep frames may exhaust the heap first
    expect(raised.error).toMatch(/RecursionError|MemoryError/)
  })

  it("truncates 10 MB of output with a marker", async () => {
    const obs = await py("print('x' * 10_000_000)")
    expect(obs.ok).toBe(true)
    expect(obs.stdout.length).toBeLessThan(4200)
    expect(obs.stdout).toMatch(/^x{4096}…\[truncated 9995905 bytes\]$/)
  })

  it("removes the bridges to the host", async () => {
    for (const module of ["js", "pyodide_js", "pyodide", "pyodide.code", "_pyodide_core", "ctypes"]) {
      expect(failure(await py(`import ${module}`)).error).toMatch(/ImportError: module '[\w.]+' is not available in the sandbox/)
    }
    expect(failure(await py("import os\nos.system('echo pwned')")).error).toMatch(/processes are not available/)
    expect(failure(await py("import subprocess\nsubprocess.run(['ls'])")).kind).toBe("error")
    expect(failure(await py("open('/etc/passwd').read()")).error).toMatch(/FileNotFoundError/)
    expect(failure(await py("open('/proc/self/environ').read()")).kind).toBe("error")
    expect(failure(await py("import sys\nsys.exit()")).error).toMatch(/SystemExit/)
    expect(await py("import os\ndict(os.environ)")).toMatchObject({ ok: true, value: "{}" })
    expect(await py("import os\nsorted(os.listdir('/'))")).toMatchObject({ value: "['dev', 'home', 'lib', 'proc', 'tmp']" })
    expect(failure(await py("import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)")).kind).toBe("error")
    expect(failure(await py("input()")).kind).toBe("error")
  })

  it("keeps ctypes and the JS bridge out of reach even when a guest takes the import blocker away", async () => {
    const attempt = [
      "import sys, _imp, importlib.machinery as m",
      "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_SandboxImportBlocker']",
      "out = []",
      "for name in ('_ctypes', 'ctypes', '_pyodide_core', 'js', 'pyodide_js'):",
      "    try: __import__(name); out.append(name + ' imported')",
      "    except ImportError as e: out.append(type(e).__name__)",
      "# By a hand-made spec, past the finders: nothing, or an empty namespace.",
      "for name in ('_ctypes', '_pyodide_core'):",
      "    mod = _imp.create_builtin(m.ModuleSpec(name, m.BuiltinImporter))",
      "    out.append(None if mod is None else sorted(k for k in vars(mod) if not k.startswith('__')))",
      "out",
    ].join("\n")
    expect(await py(attempt)).toMatchObject({
      ok: true,
      value: "['ModuleNotFoundError', 'ModuleNotFoundError', 'ModuleNotFoundError', 'ModuleNotFoundError', 'ModuleNotFoundError', None, []]",
    })
    // The pyodide package itself imports, as the inert stand-in Pyodide builds its docs with.
    const inert = [
      "import sys",
      "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_SandboxImportBlocker']",
      "import pyodide.code",
      "pyodide.code.run_js('globalThis')",
    ].join("\n")
    expect(failure(await py(inert)).error).toMatch(/ModuleNotFoundError: No module named 'js'/)
  })

  it("refuses writes outside /home/pyodide and /tmp, symbolic links included", async () => {
    const tries = [
      "import os, errno",
      "def code(f):",
      "    try: f(); return 'done'",
      "    except OSError as e: return errno.errorcode.get(e.errno, e.errno)",
      "[code(lambda: open('/lib/python3.13/site-packages/numpy.py', 'w')),",
      " code(lambda: open('/lib/python313.zip', 'r+b')),",
      " code(lambda: os.mkdir('/evil')),",
      " code(lambda: os.remove('/lib/python313.zip')),",
      " code(lambda: os.rename('/tmp', '/tmp2')),",
      " code(lambda: os.rmdir('/home/pyodide')),",
      " code(lambda: os.chmod('/tmp', 0)),",
      " code(lambda: (os.symlink('/lib/python3.13/site-packages', '/tmp/out'), open('/tmp/out/numpy.py', 'w'))),",
      " code(lambda: open('/dev/null', 'w').write('x')),",
      " code(lambda: open('/tmp/ok.txt', 'w').write('x'))]",
    ].join("\n")
    expect(await py(tries)).toMatchObject({
      ok: true,
      value: "['EROFS', 'EROFS', 'EROFS', 'EROFS', 'EROFS', 'EROFS', 'EROFS', 'EROFS', 'done', 'done']",
    })
  })

  it("blocks code generation from any JS proxy a guest digs out of the heap", async () => {
    const hunt = [
      "import gc",
      "results = []",
      "for o in gc.get_objects():",
      "    if isinstance(o, dict):",
      "        for v in list(o.values()):",
      "            if type(v).__name__ == 'JsProxy':",
      "                try: results.append(str(v.constructor('return process.env')()))",
      "                except BaseException as e: results.append('blocked')",
      "print(len(results) > 0, all(r == 'blocked' for r in results))",
    ].join("\n")
    expect(await py(hunt)).toMatchObject({ ok: true, stdout: "True True\n" })
  })

  it("keeps variables in a session and nothing across fresh calls", async () => {
    const session = pool.openSession("python")
    await py("total = 40\nimport builtins\nbuiltins.smuggled = 1\nopen('note.txt', 'w').write('hi')", { session })
    expect(await py("total + 2", { session })).toMatchObject({ ok: true, value: "42" })
    await py("import builtins\nbuiltins.smuggled = 1\nopen('/tmp/note.txt', 'w').write('hi')\nfresh_var = 5")
    expect(failure(await py("fresh_var")).error).toMatch(/NameError/)
    expect(failure(await py("total")).error).toMatch(/NameError/)
    expect(failure(await py("smuggled")).error).toMatch(/NameError/)
    expect(await py("import os\nos.path.exists('/tmp/note.txt')")).toMatchObject({ value: "False" })
    pool.closeSession(session)
  })

  it("serves several calls at once", async () => {
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => py(`sum(range(${i * 10}))`)))
    expect(results.map((r) => (r.ok ? r.value : null))).toEqual(["0", "45", "190", "435", "780", "1225"])
  })

  it("implements `turnwise exec --lang python`", async () => {
    const out = await runExecCommand(["--lang", "python", "--timeout-ms", "3000", "--memory-mb", "64"], "print(6*7)")
    expect(out.exitCode).toBe(0)
    expect(JSON.parse(out.stdout)).toMatchObject({ ok: true, stdout: "42\n" })
  })

  it("still serves normal calls after the suite and never leaked the host environment", async () => {
    expect(await py("[x * x for x in range(4)]")).toMatchObject({ ok: true, value: "[0, 1, 4, 9]" })
    for (const obs of seen) expect(JSON.stringify(obs)).not.toContain(secret)
  })
})

// One worker, so that every call below is served by the interpreter the earlier ones changed.
describe("Pyodide sandbox state between calls", () => {
  let single: SandboxPool
  const run = pythonOn(() => single)

  beforeAll(async () => {
    // A long grace: on a busy machine an interrupted loop can take more than a few hundred ms to
    // stop, and the SIGINT test must tell "stopped by the interrupt" from "worker terminated".
    single = createSandboxPool({ size: 1, limits: { timeoutMs: 1_500, graceMs: 10_000, outputLimitBytes: 4096 } })
    await single.warm("python")
  })
  afterAll(async () => {
    await single.close()
  })

  it("gives a fresh call pristine modules, builtins and interpreter settings, whatever an earlier call changed", async () => {
    const vandal = [
      "import math, sys, builtins, json, logging, random, warnings, gc",
      "math.pi = 3",
      "builtins.len = lambda x: -1",
      "json.__builtins__['abs'] = None", // a module's __builtins__ is the real builtins namespace
      "del builtins.sorted",
      "json.JSONEncoder.item_separator = '; '",
      "json.dumps = None",
      "sys.modules['json'] = math",
      "sys.path.append('/leak')",
      "warnings.simplefilter('error')",
      "logging.getLogger().setLevel(logging.DEBUG)",
      "gc.disable()",
      "random.seed(7)",
      "sys.settrace(lambda *a: None)",
    ].join("\n")
    expect(await run(vandal)).toMatchObject({ ok: true })
    const probe = [
      "import math, sys, builtins, json, logging, random, warnings, gc",
      "(math.pi, len([1, 2]), abs(-1), hasattr(builtins, 'sorted'), json.dumps({'a': 1, 'b': 2}), '/leak' in sys.path,",
      " warnings.filters[0][0], logging.getLogger().level, gc.isenabled(), sys.gettrace())",
    ].join("\n")
    expect(await run(probe)).toMatchObject({ ok: true, value: `(3.141592653589793, 2, 1, True, '{"a": 1, "b": 2}', False, 'default', 30, True, None)` })
    // A fresh interpreter seeds its generator from the OS: the call after random.seed(7) must not continue that sequence.
    const seeded = await run("import random\nrandom.seed(7)\n[random.random() for _ in range(2)]")
    const next = await run("import random\nrandom.random()")
    expect(seeded.ok && next.ok).toBe(true)
    const [, second] = JSON.parse(seeded.ok ? (seeded.value ?? "[]") : "[]") as [number, number]
    expect(Number(next.ok ? next.value : NaN)).not.toBe(second)
  })

  it("restores the SIGINT handler, so a later loop still stops at the deadline without losing its worker", async () => {
    await run("import signal\nsignal.signal(signal.SIGINT, lambda *a: None)")
    expect(failure(await run("while True: pass", { timeoutMs: 300 })).error).toBe("execution exceeded the 300 ms deadline")
  })

  it("never runs an asyncio callback a call left behind, once the call has returned", async () => {
    const leftBehind = [
      "import asyncio, math",
      "async def later():",
      "    math.pi = 3",
      "asyncio.ensure_future(later())",
      "asyncio.get_event_loop().call_later(0.05, setattr, math, 'tau', 0)",
    ].join("\n")
    expect(await run(leftBehind)).toMatchObject({ ok: true })
    await new Promise((resolve) => setTimeout(resolve, 300)) // long enough for both callbacks, had they been scheduled
    expect(await run("import math\n(math.pi, math.tau)")).toMatchObject({ ok: true, value: "(3.141592653589793, 6.283185307179586)" })
  })

  it("undoes state kept inside C objects and deep inside objects", async () => {
    const before = await run("import atexit\natexit._ncallbacks()") // Pyodide registers its own
    const vandal = [
      "import codecs, atexit, sys, json, decimal, os, logging",
      "codecs.register(lambda name: codecs.lookup('utf-8') if name == 'leaky' else None)",
      "atexit.register(print, 'leaked')",
      "sys.addaudithook(lambda event, args: exec('raise RuntimeError(\"audited\")') if event == 'glob.glob' else None)",
      "json.dumps.__kwdefaults__['sort_keys'] = True",
      "decimal.getcontext().prec = 3",
      "logging.getLogger('a.b.c').manager.disable = 50",
      "atexit._ncallbacks()",
    ].join("\n")
    expect(await run(vandal)).toMatchObject({ ok: true, value: String(Number(before.ok ? before.value : 0) + 1) })
    const probe = [
      "import codecs, atexit, json, decimal, glob, logging",
      "try: codecs.lookup('leaky'); leaky = True",
      "except LookupError: leaky = False",
      "(leaky, atexit._ncallbacks(), len(glob.glob('/*')), json.dumps({'b': 1, 'a': 2}), str(decimal.Decimal(1) / 7)[:12], logging.root.manager.disable)",
    ].join("\n")
    const callbacks = before.ok ? before.value : "?"
    expect(await run(probe)).toMatchObject({ ok: true, value: `(False, ${callbacks}, 5, '{"b": 1, "a": 2}', '0.1428571428', 0)` })
  })

  it("computes correctly after a call that grew and filled the heap", async () => {
    const bomb = await run("blocks = [bytearray(b'\\xab' * 10**6) for _ in range(150)]\nlen(blocks)", { memoryMb: 512, timeoutMs: 10_000 })
    expect(bomb).toMatchObject({ ok: true, value: "150" })
    const check =
      "zeros = [bytearray(3 * 10**6) for _ in range(20)]\n(all(z.count(0) == len(z) for z in zeros), bytes(10**6).count(0), sum(len(str(i)) for i in range(10**5)))"
    expect(await run(check)).toMatchObject({ ok: true, value: "(True, 1000000, 488890)" })
  })

  it("keeps each session's files and open files to itself", async () => {
    const a = single.openSession("python")
    const b = single.openSession("python")
    expect(await run("log = open('log.txt', 'w')\nlog.write('1')\nopen('/tmp/a.txt', 'w').write('a')\nlog.fileno()", { session: a })).toMatchObject({
      ok: true,
    })
    const look = [
      "import os",
      "def read(fd):",
      "    try: return os.read(fd, 10)",
      "    except OSError: return None",
      "(os.listdir('.'), os.listdir('/tmp'), [fd for fd in range(3, 32) if read(fd) is not None])",
    ].join("\n")
    expect(await run(look, { session: b })).toMatchObject({ ok: true, value: "([], [], [])" })
    expect(await run(look)).toMatchObject({ ok: true, value: "([], [], [])" })
    expect(await run("open('mine.txt', 'w').write('b')", { session: b })).toMatchObject({ ok: true })
    const back = "log.write('2')\nlog.close()\nimport os\n(open('log.txt').read(), open('/tmp/a.txt').read(), sorted(os.listdir('.')))"
    expect(await run(back, { session: a })).toMatchObject({ ok: true, value: "('12', 'a', ['log.txt'])" })
    single.closeSession(a)
    single.closeSession(b)
    expect(await run(look)).toMatchObject({ ok: true, value: "([], [], [])" })
  })

  it("keeps a session's module changes and imports inside that session", async () => {
    const a = single.openSession("python")
    const b = single.openSession("python")
    expect(await run("import math, fractions, builtins\nmath.pi = 3\nfractions.marker = 'a'\nbuiltins.smuggled = 1", { session: a })).toMatchObject({
      ok: true,
    })
    const probe = "import math, fractions, builtins\n(math.pi, getattr(fractions, 'marker', None), hasattr(builtins, 'smuggled'))"
    expect(await run(probe, { session: b })).toMatchObject({ ok: true, value: "(3.141592653589793, None, False)" })
    expect(await run(probe)).toMatchObject({ ok: true, value: "(3.141592653589793, None, False)" })
    expect(await run(probe, { session: a })).toMatchObject({ ok: true, value: "(3, 'a', True)" })
    // Its own random generator: a seed carries over to its next call, and to no other call.
    const firstOf7 = "import random\n(random.random(), random.Random(7).random())"
    await run("import random\nrandom.seed(7)", { session: a })
    const fresh = await run(firstOf7)
    const inB = await run(firstOf7, { session: b })
    const inA = await run(firstOf7, { session: a })
    const pair = (obs: Observation): [number, number] => JSON.parse((obs.ok ? obs.value ?? "" : "").replace("(", "[").replace(")", "]")) as [number, number]
    expect(pair(fresh)[0]).not.toBe(pair(fresh)[1])
    expect(pair(inB)[0]).not.toBe(pair(inB)[1])
    expect(pair(inA)[0]).toBe(pair(inA)[1])
    single.closeSession(a)
    single.closeSession(b)
  })
  it("counts the guest's files against its memory limit: a write past it fails inside the guest, as kind memory", async () => {
    // Deadlines far above what these take, so that a busy machine cannot fail them.
    const limits = { memoryMb: 64, timeoutMs: 60_000 }
    const fill = "block = b'x' * 10_000_000\nwith open('/tmp/fill.bin', 'wb') as f:\n    for i in range(200):\n        f.write(block)\n        print(i)"
    const filled = failure(await run(fill, limits))
    expect(filled.kind).toBe("memory")
    expect(filled.error).toMatch(/OSError: \[Errno 19\] Quota exceeded/)
    expect(filled.error).toMatch(/files count against the call's memory limit of 64 MB/)
    expect(filled.stdout.trim().split("\n").length).toBeLessThan(7) // at most 64 MB, heap included, never 2 GB
    // Growing a file without writing to it counts the same; so do entries, however small.
    expect(failure(await run("import os\nopen('/tmp/t', 'wb').close()\nos.truncate('/tmp/t', 2**30)", limits)).kind).toBe("memory")
    expect(failure(await run("for i in range(10**6): open(f'/tmp/f{i}', 'w').close()", { ...limits, memoryMb: 8 })).kind).toBe("memory")
    // Deleted files stop counting; a guest that catches the error carries on.
    const churn =
      "import os\nfor name in 'abcd':\n    open(f'/tmp/{name}', 'wb').write(b'y' * 20_000_000)\n    os.remove(f'/tmp/{name}')\nlen(os.listdir('/tmp'))"
    expect(await run(churn, limits)).toMatchObject({ ok: true, value: "0" })
    const caught = "try:\n    open('/tmp/big', 'wb').write(b'z' * 100_000_000)\nexcept OSError as e:\n    print('refused:', e.strerror)\n'went on'"
    expect(await run(caught, { memoryMb: 128, timeoutMs: 60_000 })).toMatchObject({ ok: true, stdout: "refused: Quota exceeded\n", value: "'went on'" })
    // Pipes hold unread data the same way: filling one fails, one read as it is written does not.
    const pipeFill = "import os\nr, w = os.pipe()\nfor i in range(60):\n    os.write(w, b'p' * 10_000_000)"
    expect(failure(await run(pipeFill, limits)).kind).toBe("memory")
    const pipeFlow = "import os\nr, w = os.pipe()\nn = 0\nfor i in range(30):\n    os.write(w, b'q' * 10_000_000)\n    n += len(os.read(r, 10_000_000))\nn"
    expect(await run(pipeFlow, limits)).toMatchObject({ ok: true, value: "300000000" })
    // A session's files stay, and keep counting, across its calls.
    const session = single.openSession("python")
    expect(await run("open('/tmp/keep.bin', 'wb').write(b'k' * 30_000_000)", { ...limits, session })).toMatchObject({ ok: true })
    expect(failure(await run("open('/tmp/more.bin', 'wb').write(b'm' * 30_000_000)", { ...limits, session })).kind).toBe("memory")
    single.closeSession(session)
    expect(await run("open('/tmp/small.txt', 'w').write('fine')", limits)).toMatchObject({ ok: true, value: "4" })
  })
})
