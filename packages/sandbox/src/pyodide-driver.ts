/**
 * The Python side of the Pyodide engine: hardening, and running a cell.
 *
 * Returning the interpreter to its pristine state between calls is not done here, one
 * Python object at a time, but below Python: the engine restores the WebAssembly heap
 * and the guest's files (contexts.ts, heap-image.ts, guest-files.ts). So this driver only
 * hardens the interpreter once, before the pristine state is recorded, and runs cells.
 * What is set here is therefore part of every call's starting state:
 *
 * - the bridges to the host are removed from `sys.modules`, and a meta-path finder
 *   refuses to import them again (the engine also removes `_ctypes` and `_pyodide_core`
 *   from the interpreter's table of built-in modules, so a guest that drops the finder
 *   still cannot import them);
 * - the functions that would start processes raise `OSError`;
 * - `os.environ` is empty.
 *
 * Interpreter-wide settings (recursion limit, trace and profile hooks, the int-to-str
 * digit limit, the garbage collector, the SIGINT handler, environment, working
 * directory, standard streams) are reset before every call, sessions included: a
 * session's SIGINT handler, for one, would swallow the deadlines of its later calls.
 * A call whose state is new (a fresh call, or a session's first) also reseeds `random`
 * from the OS, as a new interpreter would; otherwise every fresh call would replay the
 * pristine generator's sequence.
 *
 * @category internals
 */

import { readFileSync } from "node:fs"

/**
 * The driver's source (pyodide-driver.py beside this module). Run it once in a fresh
 * globals dict holding `_RECURSION`, the recursion limit; it defines `run_cell` and
 * `forget_builtin_copies`.
 *
 * @example
 * pyodide.runPython(driverSource, { globals: pyodide.toPy({ _RECURSION: 1000 }) })
 */
export const driverSource: string = readFileSync(new URL("./pyodide-driver.py", import.meta.url), "utf8")
