/**
 * The Python side of the Pyodide engine: hardening, running a cell, and returning the
 * interpreter to its pristine state after every call.
 *
 * One interpreter serves every call of a worker (loading Pyodide takes seconds), so
 * whatever a guest changes in the interpreter must be undone before the next call:
 * "no state leaks between trajectories". When the driver has loaded, it records the
 * pristine state, and after every call `settle` puts it back:
 *
 * - `sys.modules`: modules the call imported are dropped (the next import runs them
 *   afresh), replaced or deleted startup modules are put back;
 * - namespaces, compared by identity and restored in place: the `__dict__` of every
 *   module loaded at startup (`builtins` and `sys` among them), of the classes they
 *   define, of the plain objects they hold (e.g. `logging.root`), the plain dicts they
 *   hold (registries such as `copyreg.dispatch_table`), and the driver's own globals;
 * - lists and sets those modules hold (`sys.path`, `sys.meta_path`, `warnings.filters`,
 *   `logging.root.handlers`, ...), compared with `==`;
 * - the generator behind the `random` module, reseeded from the OS after every fresh
 *   call, as a fresh interpreter's would be;
 * - files in /home/pyodide and /tmp (fresh calls only).
 *
 * Comparing thousands of namespaces from Python after every call would cost more than a
 * small call itself, so the engine tells `settle` which namespaces (and whether
 * `sys.modules`) changed, from their dict version tags (see dict-versions.ts); `settle`
 * compares only those.
 *
 * Interpreter-wide settings (recursion limit, trace and profile hooks, the int-to-str
 * digit limit, the garbage collector, the SIGINT handler, environment, working
 * directory, standard streams) are reset before every call, sessions included.
 *
 * A session's departures from the pristine state (its imports, its changes to those
 * namespaces, lists and sets) are saved by `settle` and applied again before its next
 * call, so a session behaves like a notebook kernel of its own while other sessions and
 * fresh calls see the pristine state. A session also gets a `random` generator of its
 * own (one of those departures), so that its seeds and draws carry over between its
 * calls and nowhere else.
 *
 * Not undone: state kept inside C objects (codec and atexit registries, audit hooks,
 * functools caches), attributes of functions, objects deeper than the ones above, and a
 * guest that deliberately corrupts the driver's own records.
 *
 * @category internals
 */

/**
 * The driver's source; run it once in a fresh globals dict. It defines `run_cell`,
 * `settle`, `close_session`, `watched_addresses`, `probe_address` and `touch_probe`.
 *
 * @example
 * pyodide.runPython(driverSource(1000), { globals: driver })
 */
export const driverSource = (recursionLimit: number): string => `
import sys, os, ast, builtins, traceback, shutil, gc, operator, random, types, warnings, _random, _signal

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

# What the driver calls, bound now: a guest may rebind the builtins and modules it would
# otherwise look them up in (they are restored only after the call).
_compile, _exec, _eval, _repr, _parse = compile, exec, eval, repr, ast.parse
_is, _all, _map, _len, _id, _int, _type, _isinstance = operator.is_, all, map, len, id, int, type, isinstance
_dict, _list, _range = dict, list, range
_BaseException, _KeyboardInterrupt, _MemoryError = BaseException, KeyboardInterrupt, MemoryError
_set_type_attr, _del_type_attr = type.__setattr__, type.__delattr__
_setrecursionlimit, _gettrace, _settrace, _getprofile, _setprofile = (
    sys.setrecursionlimit, sys.gettrace, sys.settrace, sys.getprofile, sys.setprofile)
_get_digits, _set_digits = sys.get_int_max_str_digits, sys.set_int_max_str_digits
_gc_isenabled, _gc_enable, _gc_get_threshold, _gc_set_threshold = gc.isenabled, gc.enable, gc.get_threshold, gc.set_threshold
_getsignal, _setsignal, _SIGINT = _signal.getsignal, _signal.signal, _signal.SIGINT  # the C ones: no enum conversion
_filters_mutated = warnings._filters_mutated
_ENVIRON = os.environ
_chdir, _makedirs, _listdir, _remove = os.chdir, os.makedirs, os.listdir, os.remove
_isdir, _islink, _join, _rmtree = os.path.isdir, os.path.islink, os.path.join, shutil.rmtree
_RNG, _Random, _seed_generator = random._inst, random.Random, _random.Random.seed
_urandom, _from_bytes = os.urandom, int.from_bytes
_RANDOM_NAMESPACE = random.__dict__
# The module-level functions of random are methods of one hidden generator.
_RNG_METHODS = tuple(name for name, value in _RANDOM_NAMESPACE.items() if getattr(value, "__self__", None) is _RNG)

_PRISTINE_BUILTINS = dict(builtins.__dict__)
_STDOUT, _STDERR = sys.stdout, sys.stderr
_DIGITS = _get_digits()
_GC_THRESHOLD = _gc_get_threshold()
_SIGINT_HANDLER = _getsignal(_SIGINT)
_MISSING = object()
_sessions = {}     # session id -> its globals
_departures = {}   # session id -> what it changed in the pristine state, applied again before its next call
_PROBE = {}        # touched by touch_probe, to check that dict version tags can be read

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
    # A guest's SIGINT handler would swallow the deadline's interrupt in every later call.
    if _getsignal(_SIGINT) is not _SIGINT_HANDLER: _setsignal(_SIGINT, _SIGINT_HANDLER)
    if _ENVIRON: _ENVIRON.clear()
    try: _chdir(_HOME)
    except OSError:  # a guest removed it
        _makedirs(_HOME, exist_ok=True)
        _chdir(_HOME)

# ---- The pristine state ------------------------------------------------------------

_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: built-in types no guest can change
_INLINE_VALUES = 1 << 2   # Py_TPFLAGS_INLINE_VALUES: instances keep their attributes beside the object
# Values whose namespaces are not recorded: modules are recorded as such, and functions
# and descriptors are too many to watch (their attributes are rarely state).
_OPAQUE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
           types.MethodDescriptorType, types.WrapperDescriptorType, types.MethodWrapperType,
           types.GetSetDescriptorType, types.MemberDescriptorType, types.ClassMethodDescriptorType,
           staticmethod, classmethod, property)

def _record_pristine():
    """The namespaces (dict, owning class or None, pristine copy) and containers (live, pristine copy)
    to restore, and the indices of namespaces whose version tag cannot be trusted."""
    namespaces, containers, untrusted = [], [], []
    seen = {_id(sys.modules), _id(_sessions), _id(_departures), _id(_PROBE)}

    def add_namespace(namespace, owner, depth):
        if _id(namespace) in seen: return
        seen.add(_id(namespace))
        namespaces.append((namespace, owner, _dict(namespace)))
        if depth > 0:
            for value in _list(namespace.values()): visit(value, depth - 1)

    def visit(value, depth):
        kind = _type(value)
        if kind is dict:
            add_namespace(value, None, 0)
        elif kind is list or kind is set:
            if _id(value) not in seen:
                seen.add(_id(value))
                containers.append((value, kind(value)))
        elif _isinstance(value, type):
            for cls in value.__mro__:
                if cls.__flags__ & _IMMUTABLE_TYPE or _id(cls) in seen: continue
                seen.add(_id(cls))
                # The class's real dict (cls.__dict__ is a read-only proxy of it); restored
                # through type.__setattr__ so that the interpreter's method caches follow.
                add_namespace(gc.get_referents(cls.__dict__)[0], cls, depth)
        elif not _isinstance(value, _OPAQUE):
            try: namespace = object.__getattribute__(value, "__dict__")
            except _BaseException: return
            if _type(namespace) is not dict or _id(namespace) in seen: return
            if _type(value).__flags__ & _INLINE_VALUES:
                # CPython 3.13 writes the attributes of such an object into the values beside
                # it and leaves its dict's version tag alone. Given a dict of its own, the
                # object keeps its attributes there, and the tag follows every write.
                try:
                    object.__setattr__(value, "__dict__", _dict(namespace))
                    namespace = object.__getattribute__(value, "__dict__")
                except _BaseException:
                    untrusted.append(_len(namespaces))
            add_namespace(namespace, None, depth)

    for module in _list(sys.modules.values()):
        if _isinstance(module, types.ModuleType): add_namespace(module.__dict__, None, 2)
    return namespaces, containers, untrusted

def _assign(namespace, owner, content):
    """Make a namespace hold exactly \`content\`."""
    extra = [key for key in namespace if key not in content]
    if owner is None:
        for key in extra: del namespace[key]
        namespace.update(content)
    else:
        for key in extra: _del_type_attr(owner, key)
        for key, value in content.items():
            if namespace.get(key, _MISSING) is not value: _set_type_attr(owner, key, value)

def _unchanged(namespace, pristine):
    # By identity, so no guest __eq__ runs; in any order, so a restored namespace matches.
    return (_len(namespace) == _len(pristine) and namespace.keys() == pristine.keys()
            and _all(_map(_is, _map(namespace.__getitem__, pristine), pristine.values())))

def _settle_modules(keep):
    modules = _MODULES
    if _len(modules) == _len(_BASE_MODULES) and _all(_map(_is, _map(modules.get, _BASE_NAMES), _BASE_OBJECTS)):
        return  # the tag also moves when a guest removes and puts back the same module
    added = {name: module for name, module in modules.items() if _BASE_MODULES.get(name, _MISSING) is not module}
    removed = [name for name in _BASE_NAMES if name not in modules]
    if keep is not None: keep["modules"] = (added, removed)
    for name in added: del modules[name]
    modules.update(_BASE_MODULES)

def _settle_namespaces(candidates, keep):
    saved = {}
    for index in candidates:
        namespace, owner, pristine = _NAMESPACES[index]
        if _unchanged(namespace, pristine): continue
        if keep is not None: saved[index] = _dict(namespace)
        _assign(namespace, owner, pristine)
    if keep is not None and saved: keep["namespaces"] = saved

def _settle_containers(keep):
    if _LIVE == _PRISTINE_CONTAINERS: return  # one comparison in C; the loop below is the rare case
    saved = {}
    for index in _range(_len(_LIVE)):
        live, pristine = _LIVE[index], _PRISTINE_CONTAINERS[index]
        if live == pristine: continue
        if keep is not None: saved[index] = _type(pristine)(live)
        if _type(live) is list: live[:] = pristine
        else:
            live.clear()
            live.update(pristine)
    _filters_mutated()  # warnings.filters may be one of them: drop the warning caches keyed on it
    if keep is not None: keep["containers"] = saved

def _reseed():
    # The C seeding with 128 bits from the OS; the Python-level seed() would also read 2.5 kB
    # from the OS and cost as much again. gauss_next, its other state, is a namespace entry.
    _seed_generator(_RNG, _from_bytes(_urandom(16)))

def _session_departures():
    """What a new session starts with: a random generator of its own, seeded from the OS."""
    rng = _Random()
    content = _dict(_RANDOM_NAMESPACE)
    content["_inst"] = rng
    for name in _RNG_METHODS: content[name] = getattr(rng, name)
    return {"namespaces": {_RANDOM_INDEX: content}}

def _apply_departures(departures):
    if "modules" in departures:
        added, removed = departures["modules"]
        for name in removed: _MODULES.pop(name, None)
        _MODULES.update(added)
    for index, content in departures.get("namespaces", {}).items():
        namespace, owner, _ = _NAMESPACES[index]
        _assign(namespace, owner, content)
    for index, content in departures.get("containers", {}).items():
        live = _LIVE[index]
        if _type(live) is list: live[:] = content
        else:
            live.clear()
            live.update(content)
    if departures.get("containers"): _filters_mutated()

def _wipe(path):
    for entry in _listdir(path):
        full = _join(path, entry)
        if _isdir(full) and not _islink(full): _rmtree(full, ignore_errors=True)
        else: _remove(full)

def run_cell(code, session):
    """Run one cell; returns "<status>\\\\n<payload>" with status ok (no value), value, error, timeout or memory."""
    g = _sessions.get(session) if session is not None else None
    if g is None:
        g = {"__name__": "__main__", "__builtins__": _dict(_PRISTINE_BUILTINS)}
        if session is not None:
            _sessions[session] = g
            _departures[session] = _session_departures()
    _reset_interpreter()
    if session is not None and session in _departures: _apply_departures(_departures[session])
    try:
        tree = _parse(code, "<cell>", "exec")
        last = None
        if tree.body and _isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        _exec(_compile(tree, "<cell>", "exec"), g)
        answer = "ok\\n"
        if last is not None:
            result = _eval(_compile(last, "<cell>", "eval"), g)
            if result is not None: answer = "value\\n" + _repr(result)
    except _BaseException as e:
        try: answer = _kind(e) + "\\n" + _format_error(e)
        except _BaseException as f: answer = _kind(f) + "\\n" + _type(e).__name__
    finally:
        try:
            _STDOUT.flush(); _STDERR.flush()
        except _BaseException: pass
        sys.stdout, sys.stderr = _STDOUT, _STDERR
        # Release the guest's objects now (its functions and globals form a cycle), so
        # their finalizers run in this call rather than in a later one.
        if session is None: g.clear()
    return answer

def settle(session, changed):
    """After a call: back to the pristine state, keeping a session's departures for its next call.

    \`changed\` lists (comma-separated, ascending) the indices of the watched dicts that
    changed (see watched_addresses), or is None when that is unknown and all must be
    compared. Returns "" when the interpreter is clean, else why the worker must be replaced.
    """
    keep = None
    if session is not None:
        keep = _departures[session] = {}
    if changed is None:
        candidates, modules_changed = _range(_len(_NAMESPACES)), True
    else:
        candidates = [_int(index) for index in changed.split(",")] if changed else []
        modules_changed = _len(candidates) > 0 and candidates[-1] == _MODULES_INDEX
        if modules_changed: candidates.pop()
        candidates += _UNTRUSTED
    if modules_changed: _settle_modules(keep)
    _settle_namespaces(candidates, keep)
    _settle_containers(keep)
    if session is None:
        _reseed()
        for path in (_HOME, "/tmp"):
            try: _wipe(path)
            except OSError: pass
    if _STDOUT.closed or _STDERR.closed: return "the guest closed sys.stdout or sys.stderr"
    return ""

def close_session(session):
    _sessions.pop(session, None)
    _departures.pop(session, None)

def watched_addresses():
    """Addresses of the dicts whose version tags the engine reads: the namespaces, then sys.modules."""
    return [_id(namespace) for namespace, _, _ in _NAMESPACES] + [_id(_MODULES)]

def probe_address():
    return _id(_PROBE)

def touch_probe():
    _PROBE["touched"] = not _PROBE.get("touched", False)

_MODULES = sys.modules
_BASE_MODULES = _dict(sys.modules)
_BASE_NAMES = tuple(_BASE_MODULES)
_BASE_OBJECTS = tuple(_BASE_MODULES.values())
_NAMESPACES, _containers, _UNTRUSTED = _record_pristine()
_LIVE = [live for live, _ in _containers]
_PRISTINE_CONTAINERS = [pristine for _, pristine in _containers]
del _containers, _name, _module
# Last, once the driver's globals are complete (a guest can reach them from its frame).
_RANDOM_INDEX = next(index for index, (namespace, _, _) in enumerate(_NAMESPACES) if namespace is _RANDOM_NAMESPACE)
_MODULES_INDEX = _len(_NAMESPACES) + 1  # after the driver's globals, appended next
_NAMESPACES.append((globals(), None, _dict(globals())))
`
