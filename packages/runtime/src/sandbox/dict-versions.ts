/**
 * Which of a set of Python dicts changed, read from their version tags in Pyodide's heap.
 *
 * CPython 3.13 (Pyodide 0.29) gives every dict a 64-bit version tag (`ma_version_tag`,
 * PEP 509) that changes on every insertion, deletion and rebinding, and never on a read.
 * After a call, the Pyodide engine must find the few namespaces the guest changed among
 * some thousand; reading their tags from JavaScript costs microseconds, where comparing
 * them from Python costs more than a small call itself. The tag sits at a private offset
 * of the dict object (on wasm32: object header 8 bytes, `ma_used` 4, padding 4), so
 * {@link watchDictVersions} first checks, on a probe dict, that a write changes the value
 * read there and a call without writes does not; otherwise (another CPython layout) it
 * reports every dict as possibly changed, which is slower but still correct. (One kind
 * of dict keeps its tag when written: the dict of an object whose attributes CPython
 * stores beside it; the driver gives such objects a plain dict of their own first.)
 *
 * @category internals
 */

/** Byte offset of `ma_version_tag` in a `PyDictObject` on wasm32. */
const versionTagOffset = 16

/** Watched dicts and the tags they had when last marked clean. */
export interface DictVersions {
  /** Indices of the dicts whose tag changed since {@link DictVersions.rebase}, or null when tags cannot be read (all may have changed). */
  readonly changed: () => ReadonlyArray<number> | null
  /** Record the current tags as the clean state. */
  readonly rebase: () => void
}

/** How the engine lets this module look at the interpreter. */
export interface DictProbe {
  /** The interpreter's heap now (it is replaced when the memory grows). */
  readonly heap: () => ArrayBuffer
  /** Address of a dict that only {@link DictProbe.touch} writes to. */
  readonly address: number
  /** Write to the probe dict. */
  readonly touch: () => void
  /** A call into the interpreter that writes no watched dict. */
  readonly idle: () => void
}

/**
 * Watch the dicts at `addresses` (from Python's `id()`), after checking the tag layout on a probe.
 *
 * @example
 * const versions = watchDictVersions(addresses, probe)
 * // ... a call ...
 * const changed = versions.changed() // e.g. [3, 17], or null
 * versions.rebase()
 */
export const watchDictVersions = (addresses: ReadonlyArray<number>, probe: DictProbe): DictVersions => {
  const read = (view: DataView, address: number, into: Uint32Array, at: number): void => {
    into[at] = view.getUint32(address + versionTagOffset, true)
    into[at + 1] = view.getUint32(address + versionTagOffset + 4, true)
  }
  const tagOf = (address: number): string => {
    const pair = new Uint32Array(2)
    read(new DataView(probe.heap()), address, pair, 0)
    return `${pair[0]}:${pair[1]}`
  }
  const before = tagOf(probe.address)
  probe.idle()
  const afterIdle = tagOf(probe.address)
  probe.touch()
  const afterTouch = tagOf(probe.address)
  const readable = before === afterIdle && afterTouch !== afterIdle
  if (!readable) return { changed: () => null, rebase: () => undefined }

  const clean = new Uint32Array(addresses.length * 2)
  const now = new Uint32Array(addresses.length * 2)
  const snapshot = (into: Uint32Array): void => {
    const view = new DataView(probe.heap())
    for (let i = 0; i < addresses.length; i++) read(view, addresses[i]!, into, 2 * i)
  }
  snapshot(clean)
  return {
    changed: () => {
      snapshot(now)
      const changed: Array<number> = []
      for (let i = 0; i < addresses.length; i++) {
        if (now[2 * i] !== clean[2 * i] || now[2 * i + 1] !== clean[2 * i + 1]) changed.push(i)
      }
      return changed
    },
    rebase: () => snapshot(clean),
  }
}
