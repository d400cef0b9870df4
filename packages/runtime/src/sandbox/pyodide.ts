/**
 * Python guests in Pyodide, loaded once per worker.
 *
 * Loading Pyodide takes seconds, so a worker keeps one interpreter and gives each
 * fresh call a fresh globals dict (with a private copy of the pristine builtins),
 * removes modules the call imported and wipes the files it wrote; a session keeps its
 * globals dict until it is closed. The final expression's `repr` is reported like a
 * REPL would.
 *
 * Isolation, in layers:
 * - Python: `js`, `pyodide_js`, `pyodide`, `_pyodide` and `_pyodide_core` are
 *   removed from `sys.modules` and a meta-path finder refuses to import them again;
 *   Pyodide's own JS import finder is removed; `os.environ` is emptied.
 * - JavaScript realm of the worker (in case a guest still reaches a JS proxy, e.g.
 *   through `gc`): the `js` module is an empty object instead of `globalThis`; the
 *   constructors of every function kind throw (no `Function("return process")`);
 *   `eval`, NODEFS, `FS.mount`, package loading and Node's module-loading hooks of
 *   `process` are gone. The worker itself starts with an empty `process.env`.
 * - Filesystem: Pyodide's in-memory FS only (NODEFS is never mounted).
 * - Memory: `WebAssembly.Memory.prototype.grow` refuses to grow the heap past the
 *   call's limit, so the allocation fails inside Python with `MemoryError`.
 * - Time: the host sets the interrupt flag at the deadline (`KeyboardInterrupt`)
 *   and terminates the worker after a grace period if that did not stop the guest.
 *
 * @category constructors
 */
import NodeModule, { createRequire } from "node:module"
import { dirname } from "node:path"
import { loadPyodide } from "pyodide"
import type { Cell, Engine } from "./engine.js"
import { capText, OutputCapture } from "./observation.js"
import type { FailureKind } from "./observation.js"
import type { GuestOutcome } from "./protocol.js"

const driverSource = (recursionLimit: number): string => `
import sys, os, ast, builtins, json, traceback, shutil

_BLOCKED = frozenset({"js", "pyodide_js", "pyodide", "_pyodide", "_pyodide_core", "micropip", "ctypes", "_ctypes"})
_HOME = "/home/pyodide"
_RECURSION = ${recursionLimit}

class _SandboxImportBlocker:
    """Refuses to import the bridges to the host."""
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ImportError(f"module {name!r} is not available in the sandbox")
        return None

sys.meta_path[:] = [f for f in sys.meta_path if "pyodide" not in type(f).__module__ and "js" not in type(f).__name__.lower()]
sys.meta_path.insert(0, _SandboxImportBlocker())
for _name in list(sys.modules):
    if _name.partition(".")[0] in _BLOCKED:
        del sys.modules[_name]
os.environ.clear()
os.makedirs(_HOME, exist_ok=True)

def _no_processes(*args, **kwargs):
    raise OSError("processes are not available in the sandbox")

# Emscripten implements system() with Node's child_process: remove every door to it.
import posix
for _module in (os, posix):
    for _name in ("system", "popen", "fork", "forkpty", "execv", "execve", "execl", "execle", "execlp",
                  "execlpe", "execvp", "execvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv",
                  "spawnve", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "kill", "killpg"):
        if hasattr(_module, _name):
            setattr(_module, _name, _no_processes)

_compile, _exec, _eval, _repr, _parse, _dumps = compile, exec, eval, repr, ast.parse, json.dumps
_PRISTINE_BUILTINS = dict(builtins.__dict__)
_BASE_MODULES = frozenset(sys.modules)
_STDOUT, _STDERR = sys.stdout, sys.stderr
_sessions = {}

def _format_error(e):
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb)).rstrip()

def _kind(e):
    if isinstance(e, KeyboardInterrupt): return "timeout"
    if isinstance(e, MemoryError): return "memory"
    return "error"

def _wipe(path):
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full): shutil.rmtree(full, ignore_errors=True)
        else: os.remove(full)

def _reset_after_fresh_call():
    for name in list(sys.modules):
        if name not in _BASE_MODULES:
            del sys.modules[name]
    for path in (_HOME, "/tmp"):
        try: _wipe(path)
        except OSError: pass

def run_cell(code, session):
    g = _sessions.get(session) if session is not None else None
    if g is None:
        g = {"__name__": "__main__", "__builtins__": dict(_PRISTINE_BUILTINS)}
        if session is not None: _sessions[session] = g
    sys.stdout, sys.stderr = _STDOUT, _STDERR
    sys.setrecursionlimit(_RECURSION)
    os.environ.clear()
    try:
        os.chdir(_HOME)
        tree = _parse(code, "<cell>", "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        _exec(_compile(tree, "<cell>", "exec"), g)
        value = None
        if last is not None:
            result = _eval(_compile(last, "<cell>", "eval"), g)
            if result is not None: value = _repr(result)
        answer = _dumps(["ok", value])
    except BaseException as e:
        try: answer = _dumps([_kind(e), _format_error(e)])
        except BaseException as f: answer = _dumps([_kind(f), type(e).__name__])
    finally:
        try:
            sys.stdout.flush(); sys.stderr.flush()
        except BaseException: pass
        sys.stdout, sys.stderr = _STDOUT, _STDERR
        if session is None: _reset_after_fresh_call()
    return answer

def close_session(session):
    _sessions.pop(session, None)
`

/** A function that throws, put where code generation or host access used to be. */
const blocked = function blocked(): never {
  throw new TypeError("not available in the sandbox")
}

/** Make every function constructor throw, so a JS proxy cannot be turned into host code. */
const lockDownRealm = (): void => {
  const prototypes = [
    Function.prototype,
    Object.getPrototypeOf(async function () {}),
    Object.getPrototypeOf(function* () {}),
    Object.getPrototypeOf(async function* () {}),
  ]
  for (const proto of prototypes) {
    Object.defineProperty(proto, "constructor", { value: blocked, writable: false, configurable: false })
  }
  Object.defineProperty(globalThis, "eval", { value: blocked, writable: false, configurable: false })
  for (const key of ["binding", "_linkedBinding", "dlopen", "getBuiltinModule", "reallyExit", "kill", "chdir"]) {
    if (key in process) Reflect.set(process, key, blocked)
  }
}

/**
 * Load Pyodide, harden it, and return an engine.
 *
 * @example
 * const engine = await pyodideEngine({ outputLimitBytes: 65536, pythonRecursionLimit: 1000, interrupt })
 * engine.run({ code: "1+2", session: null, timeoutMs: 1000, memoryMb: 64 }) // value "3"
 */
export const pyodideEngine = async (options: {
  readonly outputLimitBytes: number
  readonly pythonRecursionLimit: number
  readonly interrupt: SharedArrayBuffer
}): Promise<Engine> => {
  // The heap may not grow past `heapLimit`; emscripten turns the refusal into a
  // failed malloc, which Python raises as MemoryError.
  let heapLimit = Number.POSITIVE_INFINITY
  const grow = WebAssembly.Memory.prototype.grow
  Object.defineProperty(WebAssembly.Memory.prototype, "grow", {
    value: function (this: WebAssembly.Memory, pages: number): number {
      if (this.buffer.byteLength + pages * 65536 > heapLimit) throw new RangeError("sandbox memory limit")
      return grow.call(this, pages)
    },
    writable: false,
    configurable: false,
  })

  let output = new OutputCapture(options.outputLimitBytes)
  const jsGlobals: object = Object.create(null)
  // Pyodide guesses its own location from a stack trace, which a TypeScript loader can skew; name it.
  const indexURL = dirname(createRequire(import.meta.url).resolve("pyodide/package.json")) + "/"
  const pyodide = await loadPyodide({ indexURL, jsglobals: jsGlobals, env: {}, stdout: () => undefined, stderr: () => undefined })
  const write = { write: (buffer: Uint8Array): number => (output.write(buffer), buffer.length) }
  pyodide.setStdout(write)
  pyodide.setStderr(write)
  pyodide.setInterruptBuffer(new Int32Array(options.interrupt))
  pyodide.setStdin({ error: true }) // input() fails instead of reading the host's stdin

  const driver = pyodide.toPy({}) as { get(key: string): unknown; destroy(): void }
  pyodide.runPython(driverSource(options.pythonRecursionLimit), { globals: driver as never })
  const runCell = driver.get("run_cell") as (code: string, session: string | undefined) => string
  const closeCell = driver.get("close_session") as (session: string) => void

  // Cut the routes from a JS proxy to the host filesystem and to code generation.
  const fs = pyodide.FS as { filesystems: Record<string, unknown>; mount: unknown }
  delete fs.filesystems["NODEFS"]
  fs.mount = blocked
  for (const key of ["loadPackage", "loadPackagesFromImports", "mountNodeFS", "mountNativeFS", "runPythonAsync", "pyimport"]) {
    Reflect.set(pyodide, key, blocked)
  }
  const module: unknown = Reflect.get(pyodide, "_module")
  if (typeof module !== "object" || module === null) throw new Error("pyodide: the emscripten module is not reachable")
  Reflect.set(module, "NODEFS", undefined)
  // Pyodide's Node glue calls require("child_process") for system(), require("ws") for
  // sockets and require("fs") for NODEFS at call time, both through its CommonJS module's
  // require and through a global one. After loading, only crypto (random numbers) resolves.
  const allowed = new Set(["crypto", "node:crypto"])
  const denied = (name: string): Error => new Error(`module "${name}" is not available in the sandbox`)
  const moduleRequire: unknown = Reflect.get(NodeModule.prototype, "require")
  if (typeof moduleRequire !== "function") throw new Error("pyodide: Module.prototype.require is missing")
  Reflect.set(NodeModule.prototype, "require", function (this: unknown, name: string): unknown {
    if (!allowed.has(name)) throw denied(name)
    return Reflect.apply(moduleRequire, this, [name])
  })
  const globalRequire: unknown = Reflect.get(globalThis, "require")
  Reflect.set(globalThis, "require", (name: string): unknown => {
    if (!allowed.has(name) || typeof globalRequire !== "function") throw denied(name)
    return Reflect.apply(globalRequire, undefined, [name])
  })
  lockDownRealm()

  const memory = (): number => {
    const heap: unknown = Reflect.get(module, "HEAPU8")
    return heap instanceof Uint8Array ? heap.buffer.byteLength : 0
  }
  const baseline = memory()

  const run = (cell: Cell): { outcome: GuestOutcome; retire: boolean } => {
    output = new OutputCapture(options.outputLimitBytes)
    heapLimit = baseline + cell.memoryMb * 1024 * 1024
    let answer: string
    try {
      // undefined, not null: Pyodide turns JS null into `jsnull`, which is not Python's None.
      answer = runCell(cell.code, cell.session ?? undefined)
    } catch (cause) {
      // The interpreter itself failed (e.g. a fatal error): report it and retire the worker.
      heapLimit = Number.POSITIVE_INFINITY
      const message = cause instanceof Error ? cause.message : String(cause)
      return { outcome: { ok: false, kind: "crash", error: `Interpreter failure: ${message.slice(-2000)}`, stdout: output.text() }, retire: true }
    }
    heapLimit = Number.POSITIVE_INFINITY
    const [status, payload] = JSON.parse(answer) as [string, string | null]
    const stdout = output.text()
    // A heap far above the limit (kept by a session, or fragmentation) is returned to the OS by replacing the worker.
    const retire = memory() > baseline + 2 * 1024 * 1024 * 1024
    if (status === "ok") return { outcome: { ok: true, stdout, value: payload === null ? null : capText(payload, options.outputLimitBytes) }, retire }
    const kind: FailureKind = status === "timeout" || status === "memory" ? status : "error"
    return { outcome: { ok: false, kind, error: capText(payload ?? "", options.outputLimitBytes), stdout }, retire }
  }

  return { run, closeSession: (session) => closeCell(session) }
}
