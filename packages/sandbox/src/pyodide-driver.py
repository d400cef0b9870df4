# The Python side of the Pyodide engine: hardening, and running a cell (see pyodide-driver.ts).
# Run once in a fresh globals dict that holds _RECURSION, the recursion limit set before
# every call; it defines run_cell and forget_builtin_copies.
import sys, os, ast, traceback, gc, random, _random, _signal

_BLOCKED = frozenset({"js", "pyodide_js", "pyodide", "_pyodide", "_pyodide_core", "micropip", "ctypes", "_ctypes"})
_HOME = "/home/pyodide"

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
del _module, _name

def forget_builtin_copies(name):
    """Empty the interpreter's cached copies of a built-in module's namespace.

    CPython keeps a copy of a single-phase built-in module's namespace once it has been
    imported, and hands it to anyone who asks for the module by a hand-made spec
    (`_imp.create_builtin`), table entry or not. The module objects in use keep theirs.
    Returns how many copies were emptied."""
    modules = [o for o in gc.get_objects() if type(o) is type(sys)]
    live = {id(m.__dict__) for m in modules}
    originals = [m.__dict__ for m in modules if m.__name__ == name]
    emptied = 0
    for original in originals:
        marker = next((v for k, v in original.items() if not k.startswith("__")), None)
        if marker is None: continue
        for d in gc.get_objects():
            if type(d) is dict and id(d) not in live and any(v is marker for v in d.values()):
                d.clear()
                emptied += 1
    return emptied

# What the driver calls, bound now: a guest may rebind the builtins and modules it
# would otherwise look them up in (for the rest of its call or session).
_compile, _exec, _eval, _repr, _parse, _dict = compile, exec, eval, repr, ast.parse, dict
_isinstance, _type, _BaseException, _KeyboardInterrupt, _MemoryError = isinstance, type, BaseException, KeyboardInterrupt, MemoryError
_setrecursionlimit, _gettrace, _settrace, _getprofile, _setprofile = (
    sys.setrecursionlimit, sys.gettrace, sys.settrace, sys.getprofile, sys.setprofile)
_get_digits, _set_digits = sys.get_int_max_str_digits, sys.set_int_max_str_digits
_gc_isenabled, _gc_enable, _gc_get_threshold, _gc_set_threshold = gc.isenabled, gc.enable, gc.get_threshold, gc.set_threshold
_getsignal, _setsignal, _SIGINT = _signal.getsignal, _signal.signal, _signal.SIGINT  # the C ones: no enum conversion
_ENVIRON = os.environ
_chdir, _makedirs = os.chdir, os.makedirs
_RNG, _urandom, _from_bytes = random._inst, os.urandom, int.from_bytes
_seed_generator = _random.Random.seed  # the C seeding

_PRISTINE_BUILTINS = _dict(__builtins__ if _type(__builtins__) is dict else __builtins__.__dict__)
_STDOUT, _STDERR = sys.stdout, sys.stderr
_DIGITS = _get_digits()
_GC_THRESHOLD = _gc_get_threshold()
_SIGINT_HANDLER = _getsignal(_SIGINT)
_sessions = {}  # session id -> its globals (only in that session's interpreter state)

def _format_error(e):
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
        tb = tb.tb_next
    return "".join(traceback.format_exception(_type(e), e, tb)).rstrip()

def _kind(e):
    if _isinstance(e, _KeyboardInterrupt): return "timeout"
    if _isinstance(e, _MemoryError): return "memory"
    return "error"

def _reset_interpreter():
    sys.stdout, sys.stderr = _STDOUT, _STDERR
    # Each printed line reaches the host's shared output at once, so a worker terminated
    # at the deadline still reports what the guest printed before it.
    if not _STDOUT.line_buffering: _STDOUT.reconfigure(line_buffering=True)
    _setrecursionlimit(_RECURSION)
    if _gettrace() is not None: _settrace(None)
    if _getprofile() is not None: _setprofile(None)
    if _get_digits() != _DIGITS: _set_digits(_DIGITS)
    if not _gc_isenabled(): _gc_enable()
    if _gc_get_threshold() != _GC_THRESHOLD: _gc_set_threshold(*_GC_THRESHOLD)
    if _getsignal(_SIGINT) is not _SIGINT_HANDLER: _setsignal(_SIGINT, _SIGINT_HANDLER)
    if _ENVIRON: _ENVIRON.clear()
    try: _chdir(_HOME)
    except OSError:
        _makedirs(_HOME, exist_ok=True)
        _chdir(_HOME)

def run_cell(code, session, new_state):
    """Run one cell; returns "<status>\\n<payload>" with status ok (no value), value, error, timeout or memory."""
    if new_state:
        # The C seeding with 128 bits from the OS (random.seed() would read 2.5 kB).
        _seed_generator(_RNG, _from_bytes(_urandom(16)))
    g = _sessions.get(session) if session is not None else None
    if g is None:
        g = {"__name__": "__main__", "__builtins__": _dict(_PRISTINE_BUILTINS)}
        if session is not None: _sessions[session] = g
    _reset_interpreter()
    try:
        tree = _parse(code, "<cell>", "exec")
        last = None
        if tree.body and _isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        _exec(_compile(tree, "<cell>", "exec"), g)
        answer = "ok\n"
        if last is not None:
            result = _eval(_compile(last, "<cell>", "eval"), g)
            if result is not None: answer = "value\n" + _repr(result)
    except _BaseException as e:
        try: answer = _kind(e) + "\n" + _format_error(e)
        except _BaseException as f: answer = _kind(f) + "\n" + _type(e).__name__
    finally:
        try:
            _STDOUT.flush(); _STDERR.flush()
        except _BaseException: pass
        sys.stdout, sys.stderr = _STDOUT, _STDERR
    if _STDOUT.closed or _STDERR.closed:
        answer = "closed\n" + answer
    return answer
