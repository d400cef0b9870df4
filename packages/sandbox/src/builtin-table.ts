/**
 * Remove modules from CPython's table of built-in modules, in Pyodide's heap.
 *
 * `_ctypes` (reading and writing any byte of the heap, calling any function pointer)
 * and `_pyodide_core` (the bridge to JavaScript) are compiled into Pyodide. A meta-path
 * finder that refuses them is only Python: a guest can remove it and import them. The
 * import system finds a built-in module by name in the inittab, an array of
 * `{ const char *name; PyObject *(*initfunc)(void) }` ending with a null name (CPython
 * keeps the static one, Pyodide's extended one and a runtime copy). Taking the entries
 * out of every copy leaves nothing to import: `import _ctypes` raises
 * `ModuleNotFoundError` whatever the guest does to `sys.meta_path`. (A module that was
 * imported before, as `_pyodide_core` was while Pyodide loaded, also has a cached copy
 * of its namespace; the driver's `forget_builtin_copies` empties those.)
 *
 * The arrays are found by their shape: 8-byte entries whose name pointers lead to the
 * names in `sys.builtin_module_names`. The change is made before the pristine heap is
 * recorded, so it holds for every call.
 *
 * @category internals
 */

/** An inittab array found in the heap: its byte address and entry count. */
interface Table {
  readonly address: number
  readonly entries: number
}

/**
 * Take `remove` out of every inittab in `heap` (below `end`); returns the number of arrays
 * changed. Throws when no array is found or a name is in none, so that a Pyodide whose
 * layout differs fails loudly instead of running unhardened.
 *
 * @example
 * removeBuiltinModules(module.HEAPU8, module._sbrk(0), builtinNames, ["_ctypes", "_pyodide_core"]) // 3
 */
export const removeBuiltinModules = (
  heap: Uint8Array,
  end: number,
  builtinNames: ReadonlyArray<string>,
  remove: ReadonlyArray<string>,
): number => {
  const words = new Uint32Array(heap.buffer, heap.byteOffset, end >>> 2)
  const names = new Set(builtinNames)
  const decoder = new TextDecoder()
  const nameAt = (pointer: number): string | null => {
    if (pointer === 0 || pointer >= end) return null
    let stop = pointer
    while (stop < end && heap[stop] !== 0 && stop - pointer < 64) stop++
    if (heap[stop] !== 0) return null
    const name = decoder.decode(heap.subarray(pointer, stop))
    return names.has(name) ? name : null
  }
  const tables: Array<Table> = []
  for (let word = 0; word + 1 < words.length; word += 2) {
    if (nameAt(words[word]!) === null || (word >= 2 && nameAt(words[word - 2]!) !== null)) continue
    let entries = 0
    while (word + 2 * entries < words.length && nameAt(words[word + 2 * entries]!) !== null) entries++
    if (entries >= Math.min(10, names.size)) tables.push({ address: word * 4, entries })
  }
  if (tables.length === 0) throw new Error("sandbox: CPython's table of built-in modules was not found in the Pyodide heap")
  const removed = new Set<string>()
  for (const { address, entries } of tables) {
    const first = address >>> 2
    const kept: Array<[number, number]> = []
    for (let k = 0; k < entries; k++) {
      const name = nameAt(words[first + 2 * k]!)
      if (name !== null && remove.includes(name)) removed.add(name)
      else kept.push([words[first + 2 * k]!, words[first + 2 * k + 1]!])
    }
    words.fill(0, first, first + 2 * entries)
    kept.forEach(([name, init], k) => {
      words[first + 2 * k] = name
      words[first + 2 * k + 1] = init
    })
  }
  const missing = remove.filter((name) => !removed.has(name))
  if (missing.length > 0) throw new Error(`sandbox: built-in module(s) ${missing.join(", ")} not found in CPython's table`)
  return tables.length
}
