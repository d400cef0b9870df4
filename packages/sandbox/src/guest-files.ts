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

/** The parts of Emscripten's FS object this module uses (`pyodide.FS`). */
export interface EmscriptenFs {
  readonly lookupPath: (path: string, options?: Record<string, boolean>) => { node: FsNode | null | undefined }
  readonly isRoot: (node: FsNode) => boolean
  readonly isDir: (mode: number) => boolean
  readonly isChrdev: (mode: number) => boolean
  readonly hashAddNode: (node: FsNode) => void
  readonly hashRemoveNode: (node: FsNode) => void
  readonly close: (stream: FsStream) => void
  readonly streams: Array<FsStream | null | undefined>
  readonly ErrnoError: new (errno: number) => Error
}

/** The directories a guest may write in. */
export const writableDirectories = ["/home/pyodide", "/tmp"] as const

/** Emscripten's errno for "Read-only file system". */
const EROFS = 69
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
export const guestFiles = (
  fs: EmscriptenFs,
): ContextPart<SavedFiles> & { readonly discard: (saved: SavedFiles) => void; readonly intact: () => boolean } => {
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
    for (let at = node; ; at = at.parent) {
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
    Reflect.set(fs, name, function (this: unknown, ...args: Array<unknown>): unknown {
      if (!check(...args)) refuse()
      return Reflect.apply(original, this, args)
    })
  }
  const inDirectory = (path: unknown): boolean => typeof path !== "string" || writable(parentOf(path), true)
  guard("mknod", (path) => inDirectory(path)) // also FS.create, FS.mkdir, O_CREAT
  guard("symlink", (_target, path) => inDirectory(path))
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
  }

  return {
    save: () => ({ entries: detach(), streams: takeStreams() }),
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
    },
    reset,
    /** Whether the standard descriptors are still the pristine ones (a guest may close or replace them). */
    intact: () => baseStreams.every((stream) => fs.streams[stream.fd] === stream),
    discard: (saved) => {
      for (const entries of saved.entries) {
        drop(entries)
      }
    },
  }
}
