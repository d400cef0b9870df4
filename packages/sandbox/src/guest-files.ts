/**
 * The guest's files: writable only in /home/pyodide and /tmp, and switched with the
 * interpreter (see contexts.ts).
 *
 * Pyodide's file system lives in JavaScript objects (Emscripten's in-memory FS), outside
 * the WebAssembly heap that heap-image.ts restores, so it needs its own care:
 *
 * - **Writes** (creating, changing, renaming, deleting, `chmod`, truncating, opening for
 *   writing) are refused outside /home/pyodide and /tmp with `EROFS`, "Read-only file
 *   system"; device files such as /dev/null stay writable. A guest therefore cannot
 *   change the standard library, plant a module for a later trajectory to import, or
 *   remove its working directories. The check follows the node a path resolves to, so a
 *   symbolic link in /tmp does not lead out of it.
 * - **Contexts**: the entries of those two directories, and the file descriptors a call
 *   opened, belong to the call or session that made them. Saving a session detaches them
 *   from the tree and the descriptor table (a move, not a copy: a file a session keeps
 *   open still works when it comes back); a fresh call's are dropped when it returns.
 *   No call sees another's files, or can read them through a guessed descriptor number.
 * - **Quota**: file contents live in the worker's JavaScript memory, which the heap
 *   ceiling does not see, so they are counted here (each file's allocated bytes, plus
 *   {@link nodeBytes} per file, directory or link) and a write, `truncate` or new entry
 *   that would take more than the call's allowance fails with `EDQUOT`, "Disk quota
 *   exceeded". The engine sets the allowance to what the call's memory limit leaves
 *   beside its heap, so a guest's files and heap share one limit. The count is an upper
 *   bound kept as writes happen; when a write would cross the allowance, the tree is
 *   measured again (deleted files then stop counting) before the write is refused.
 *   Saved sessions report their files' bytes, so the worker's cap on saved sessions
 *   covers them too. Pipes (`os.pipe`) hold unread data in JavaScript memory as well, so
 *   a write into a pipe is charged the same way, and the buffers of every open pipe
 *   count as its files do.
 *
 * @category internals
 */
import type { ContextPart } from "./contexts.js"

/** The parts of Emscripten's FS node this module uses. */
interface FsNode {
  readonly name: string
  parent: FsNode
  readonly mode: number
  contents: unknown
}

/** An open file description. */
interface FsStream {
  readonly fd: number
}

/** Emscripten's in-memory pipe (PIPEFS), on the node of either end's stream: unread data in buckets. */
interface FsPipe {
  readonly buckets: ReadonlyArray<{ readonly buffer: ArrayBufferView }>
}

/** The pipe behind a stream, if it is one end of a pipe. */
const pipeOf = (stream: FsStream | null | undefined): FsPipe | undefined => {
  const node = stream !== null && stream !== undefined && "node" in stream ? (stream as { node?: { pipe?: FsPipe } }).node : undefined
  return node?.pipe
}

/** Bytes the buffers of the pipes behind `streams` hold, each pipe once. */
const pipeBytes = (streams: Iterable<FsStream | null | undefined>): number => {
  const seen = new Set<FsPipe>()
  let total = 0
  for (const stream of streams) {
    const pipe = pipeOf(stream)
    if (pipe === undefined || seen.has(pipe)) continue
    seen.add(pipe)
    for (const bucket of pipe.buckets) total += bucket.buffer.byteLength
  }
  return total
}

/** The parts of Emscripten's in-memory file system (MEMFS) this module wraps. */
interface Memfs {
  readonly ops_table: { readonly file: { readonly node: Record<string, unknown>; readonly stream: Record<string, unknown> } } | null
  readonly node_ops: Record<string, unknown>
  readonly stream_ops: Record<string, unknown>
}

/** The parts of Emscripten's FS object this module uses (`pyodide.FS`). */
export interface EmscriptenFs {
  readonly filesystems: Record<string, unknown>
  readonly isFile: (mode: number) => boolean
  readonly lookupPath: (path: string, options?: Record<string, boolean>) => { node: FsNode | null | undefined }
  readonly isRoot: (node: FsNode) => boolean
  readonly isDir: (mode: number) => boolean
  readonly isChrdev: (mode: number) => boolean
  readonly hashAddNode: (node: FsNode) => void
  readonly hashRemoveNode: (node: FsNode) => void
  readonly close: (stream: FsStream) => void
  readonly streams: Array<FsStream | null | undefined>
  readonly ErrnoError: new(errno: number) => Error
}

/** The directories a guest may write in. */
export const writableDirectories = ["/home/pyodide", "/tmp"] as const

/** Emscripten's errno for "Read-only file system". */
const EROFS = 69
/** Emscripten's errno for "Disk quota exceeded". */
const EDQUOT = 19
/** What one file, directory or link costs besides its contents (the node, its name, its table entries), counted against the quota. */
export const nodeBytes = 512
/** open() flags: write access, O_CREAT, O_TRUNC, O_NOFOLLOW. */
const O_ACCMODE_WRITE = 3
const O_TRUNC = 512
const O_NOFOLLOW = 131072

/** A saved context: the entries of each writable directory, and its open descriptors. */
export interface SavedFiles {
  readonly entries: ReadonlyArray<ReadonlyArray<FsNode>>
  readonly streams: ReadonlyArray<FsStream>
}

/**
 * Refuse writes outside the writable directories and return the files context part.
 * Call once, when the interpreter is pristine (its open descriptors are kept forever).
 *
 * @example
 * const files = guestFiles(pyodide.FS as EmscriptenFs)
 * const saved = files.save() // ... files.load(saved)
 */
/** The guest files' share of a call's memory limit. */
export interface FileQuota {
  /** From now on, refuse growth past `allowance()` bytes of guest files (read at each check); clears `refused`. */
  readonly limit: (allowance: () => number) => void
  /** No limit (the engine's own work between calls). */
  readonly lift: () => void
  /** Whether a write was refused since the last {@link FileQuota.limit}. */
  readonly refused: () => boolean
  /** Bytes the guest's files hold now (an upper bound, exact after each re-measure). */
  readonly usedBytes: () => number
}

export const guestFiles = (
  fs: EmscriptenFs,
): ContextPart<SavedFiles> & {
  readonly discard: (saved: SavedFiles) => void
  readonly bytes: (saved: SavedFiles) => number
  readonly intact: () => boolean
  readonly quota: FileQuota
} => {
  const roots = writableDirectories.map((path) => {
    const node = fs.lookupPath(path).node
    if (node === null || node === undefined || !fs.isDir(node.mode)) throw new Error(`sandbox: ${path} is not a directory`)
    return node
  })
  const baseStreams = fs.streams.flatMap((stream) => (stream ? [stream] : []))
  const baseDescriptors = new Set(baseStreams.map((stream) => stream.fd))

  /** Whether a node lies in a writable directory (`orRoot`: or is one). */
  const writable = (node: FsNode | null | undefined, orRoot: boolean): boolean => {
    if (node === null || node === undefined) return true // does not exist: the operation itself fails with ENOENT
    if (!orRoot && roots.includes(node)) return false
    for (let at = node;; at = at.parent) {
      if (roots.includes(at)) return true
      if (fs.isRoot(at) || at.parent === at) return false
    }
  }
  const refuse = (): never => {
    throw new fs.ErrnoError(EROFS)
  }
  const parentOf = (path: string): FsNode | null | undefined => fs.lookupPath(path, { parent: true }).node
  const guard = (name: string, check: (...args: Array<unknown>) => boolean): void => {
    const original: unknown = Reflect.get(fs, name)
    if (typeof original !== "function") throw new Error(`sandbox: FS.${name} is missing`)
    Reflect.set(fs, name, function(this: unknown, ...args: Array<unknown>): unknown {
      if (!check(...args)) refuse()
      return Reflect.apply(original, this, args)
    })
  }
  const inDirectory = (path: unknown): boolean => typeof path !== "string" || writable(parentOf(path), true)
  /** A new entry: allowed in a writable directory, and charged to the quota. */
  const newEntry = (path: unknown): boolean => {
    if (!inDirectory(path)) return false
    charge(nodeBytes + (typeof path === "string" ? path.length : 0))
    return true
  }
  guard("mknod", (path) => newEntry(path)) // also FS.create, FS.mkdir, O_CREAT
  guard("symlink", (_target, path) => newEntry(path))
  guard("rename", (from, to) => inDirectory(from) && inDirectory(to))
  guard("rmdir", (path) => inDirectory(path))
  guard("unlink", (path) => inDirectory(path))
  guard("doSetAttr", (_stream, node) => writable(node as FsNode, false)) // chmod, chown, truncate
  guard("utime", (path) => typeof path !== "string" || writable(fs.lookupPath(path, { follow: true }).node, false))
  guard("open", (path, flags) => {
    const numeric = typeof flags === "number" ? flags : 0
    const writes = typeof flags === "string" ? /[wa+]/.test(flags) : (numeric & (O_ACCMODE_WRITE | O_TRUNC)) !== 0
    if (!writes) return true
    const node = typeof path === "string" ? fs.lookupPath(path, { follow: (numeric & O_NOFOLLOW) === 0, noent_okay: true }).node : (path as FsNode)
    return node === null || node === undefined || writable(node, false) || fs.isChrdev(node.mode)
  })

  // The quota. `used` never falls below what the files hold: growth is added as it
  // happens, removals are only noticed by measure().
  let allowance: () => number = () => Infinity
  let used = 0
  let refusedWrite = false
  const contentBytes = (node: FsNode): number => {
    const contents = node.contents
    return fs.isFile(node.mode) && ArrayBuffer.isView(contents) ? contents.byteLength : 0
  }
  /** Bytes held by the entries below `nodes`, each counted once. */
  const treeBytes = (nodes: Iterable<FsNode>, seen: Set<FsNode>): number => {
    let total = 0
    const stack = [...nodes]
    while (stack.length > 0) {
      const node = stack.pop()!
      if (seen.has(node)) continue
      seen.add(node)
      total += nodeBytes + node.name.length + contentBytes(node)
      if (fs.isDir(node.mode)) stack.push(...Object.values(node.contents as Record<string, FsNode>))
    }
    return total
  }
  /** A file the guest made (an open descriptor may hold one that was deleted: its parent is still the directory it was in). */
  const isGuestFile = (node: FsNode): boolean => fs.isFile(node.mode) && writable(node, false)
  /** What the current context's files hold: the writable trees, and files only an open descriptor still holds. */
  const measure = (): number => {
    const seen = new Set<FsNode>(roots)
    const inTree = treeBytes(roots.flatMap((root) => Object.values(root.contents as Record<string, FsNode>)), seen)
    const open = fs.streams.flatMap((
      stream,
      fd,
    ) => (stream && !baseDescriptors.has(fd) && "node" in stream ? [(stream as FsStream & { node: FsNode }).node] : []))
    return inTree + treeBytes(open.filter(isGuestFile), seen) + pipeBytes(fs.streams)
  }
  /** Reserve `bytes` more, or refuse with EDQUOT. */
  const charge = (bytes: number): void => {
    if (bytes <= 0) return
    const room = allowance()
    if (used + bytes > room) {
      used = measure()
      if (used + bytes > room) {
        refusedWrite = true
        throw new fs.ErrnoError(EDQUOT)
      }
    }
    used += bytes
  }
  /** Wrap a MEMFS operation on a file: charge what it will allocate, then correct by what it did. */
  const metered = (
    table: Record<string, unknown>,
    name: string,
    growth: (node: FsNode, args: Array<unknown>) => number,
    nodeOf: (args: Array<unknown>) => FsNode,
  ): void => {
    const original: unknown = table[name]
    if (typeof original !== "function") throw new Error(`sandbox: MEMFS ${name} is missing`)
    table[name] = function(this: unknown, ...args: Array<unknown>): unknown {
      const node = nodeOf(args)
      const before = contentBytes(node)
      const expected = Math.max(0, growth(node, args))
      charge(expected)
      try {
        return Reflect.apply(original, this, args)
      } finally {
        // Emscripten over-allocates as a file grows (up to 2x below 1 MB, 1.125x above).
        used = Math.max(0, used + contentBytes(node) - before - expected)
      }
    }
  }
  const memfs = fs.filesystems["MEMFS"] as Memfs | undefined
  if (memfs === undefined || memfs.ops_table === null) throw new Error("sandbox: MEMFS is not reachable")
  const writeGrowth = (node: FsNode, args: Array<unknown>): number => {
    const [, , , length, position] = args as [unknown, unknown, number, number, number]
    return Number(position) + Number(length) - contentBytes(node)
  }
  const sizeGrowth = (node: FsNode, args: Array<unknown>): number => {
    const attr = args[1] as { size?: number } | undefined
    return attr?.size === undefined ? 0 : Number(attr.size) - contentBytes(node)
  }
  const streamNode = (args: Array<unknown>): FsNode => (args[0] as { node: FsNode }).node
  const firstNode = (args: Array<unknown>): FsNode => args[0] as FsNode
  // Files take their operations from ops_table (shared by every file node); msync calls
  // stream_ops.write directly.
  for (const table of [memfs.ops_table.file.stream, memfs.stream_ops]) metered(table, "write", writeGrowth, streamNode)
  for (const table of [memfs.ops_table.file.node, memfs.node_ops]) metered(table, "setattr", sizeGrowth, firstNode)
  // Pipes are not MEMFS files and their operations are not reachable from here, but every
  // write goes through FS.write: charge what goes into a pipe (reads free it, and are
  // noticed by measure()).
  const write: unknown = Reflect.get(fs, "write")
  if (typeof write !== "function") throw new Error("sandbox: FS.write is missing")
  Reflect.set(fs, "write", function(this: unknown, ...args: Array<unknown>): unknown {
    if (pipeOf(args[0] as FsStream) !== undefined) charge(Number(args[3]))
    return Reflect.apply(write, this, args)
  })
  const quota: FileQuota = {
    limit: (next) => {
      allowance = next
      refusedWrite = false
    },
    lift: () => {
      allowance = () => Infinity
    },
    refused: () => refusedWrite,
    usedBytes: () => used,
  }

  /** Take every entry out of the writable directories. */
  const detach = (): Array<Array<FsNode>> =>
    roots.map((root) => {
      const entries = Object.values(root.contents as Record<string, FsNode>)
      for (const entry of entries) fs.hashRemoveNode(entry)
      root.contents = {}
      return entries
    })
  /** Forget detached entries and everything below them (their lookup-table slots too). */
  const drop = (entries: ReadonlyArray<FsNode>): void => {
    for (const entry of entries) {
      if (fs.isDir(entry.mode)) {
        const children = Object.values(entry.contents as Record<string, FsNode>)
        for (const child of children) fs.hashRemoveNode(child)
        drop(children)
      }
    }
  }
  /** The descriptors opened since the pristine state, taken out of the table. */
  const takeStreams = (): Array<FsStream> => {
    const taken: Array<FsStream> = []
    fs.streams.forEach((stream, fd) => {
      if (stream && !baseDescriptors.has(fd)) {
        taken.push(stream)
        fs.streams[fd] = null
      }
    })
    return taken
  }

  const reset = (): void => {
    for (const entries of detach()) drop(entries)
    for (const stream of takeStreams()) {
      try {
        fs.streams[stream.fd] = stream // FS.close expects it in the table
        fs.close(stream)
      } catch {
        fs.streams[stream.fd] = null
      }
    }
    used = 0
  }

  return {
    save: () => {
      const saved = { entries: detach(), streams: takeStreams() }
      used = 0
      return saved
    },
    load: (saved) => {
      reset()
      saved.entries.forEach((entries, index) => {
        const root = roots[index]!
        const contents = root.contents as Record<string, FsNode>
        for (const entry of entries) {
          contents[entry.name] = entry
          entry.parent = root
          fs.hashAddNode(entry)
        }
      })
      for (const stream of saved.streams) fs.streams[stream.fd] = stream
      used = measure()
    },
    reset,
    bytes: (saved) => {
      const seen = new Set<FsNode>()
      const open = saved.streams.flatMap((stream) => ("node" in stream ? [(stream as FsStream & { node: FsNode }).node] : []))
      return treeBytes(saved.entries.flat(), seen) + treeBytes(open.filter(isGuestFile), seen) + pipeBytes(saved.streams)
    },
    quota,
    /** Whether the standard descriptors are still the pristine ones (a guest may close or replace them). */
    intact: () => baseStreams.every((stream) => fs.streams[stream.fd] === stream),
    discard: (saved) => {
      for (const entries of saved.entries) {
        drop(entries)
      }
    },
  }
}
