/**
 * A pool of sandbox workers, and its plain Promise API.
 *
 * Each language has up to `size` worker threads (started when a call needs one, or by
 * `warm`). A request waits for an idle worker; a session is pinned to the worker
 * that holds its state. The host owns the deadline: at `timeoutMs` it raises the
 * interrupt in a Python worker (QuickJS interrupts itself), and `graceMs` later it
 * terminates a worker that is still busy. A worker that dies (uncaught error, JS heap
 * exhausted, its thread exited) is taken out the same way; its caller gets an
 * observation of kind "crash" (or "memory"), never a rejected promise, and a
 * replacement starts as soon as a call waits for one. Either way the observation keeps
 * what reached the host's shared output before the worker stopped. Promises reject only
 * with {@link SandboxError}, when the sandbox itself cannot serve (a worker that cannot
 * start, a closed pool, a session used with the wrong language, a session closed while
 * its call waited).
 *
 * Every call settles: one function ({@link stop}) takes a worker out of service, and it
 * answers the worker's call, fails a start in progress, clears the worker's timers and
 * terminates its thread, exactly once, whichever of the deadline, a crash, an exit,
 * a failed start or `close` got there first. Events a stopped worker sends afterwards
 * are ignored. `close` settles every call and returns once the threads have exited (or,
 * for a thread stuck in native code, after `closeTimeoutMs`, leaving it unreferenced so
 * it cannot keep the process alive). Idle workers are unreferenced: an idle pool never
 * keeps a process alive, and a busy or starting one always does while a call waits.
 *
 * When a worker holding sessions is replaced, those sessions continue on a fresh
 * interpreter state, like a notebook whose kernel restarted.
 *
 * @category constructors
 */
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import { clampLimit, decodeLimits, maxMemoryMb, maxTimeoutMs } from "./limits.js"
import type { SandboxLimits } from "./limits.js"
import { OutputCapture, SandboxError } from "./observation.js"
import type { Language, Observation, SandboxRequest } from "./observation.js"
import type { GuestOutcome, HostMessage, WorkerInit, WorkerMessage } from "./protocol.js"

/** Options of {@link createSandboxPool}. */
export interface SandboxPoolOptions {
  /** Worker threads per language (default 2). */
  readonly size?: number
  /** Limits; per-request `timeoutMs` / `memoryMb` override the first two. */
  readonly limits?: Partial<SandboxLimits>
  /** How long a worker may take to load its interpreter, in ms (default 60 000). */
  readonly startTimeoutMs?: number
  /** JS heap of each worker thread, in MiB (`resourceLimits.maxOldGenerationSizeMb`; default 512). */
  readonly workerHeapMb?: number
  /** How long `close` waits for the worker threads to exit, in ms (default 10 000). */
  readonly closeTimeoutMs?: number
  /**
   * The module each worker thread runs (a `file:` URL; default this package's worker).
   * Tests give a worker that misbehaves on purpose; it must speak protocol.ts.
   */
  readonly workerEntry?: string
}

/** The Promise API shared by the Effect service and non-Effect callers. */
export interface SandboxPool {
  /** Run one cell; resolves with what the guest did, rejects only with {@link SandboxError}. */
  readonly run: (request: SandboxRequest) => Promise<Observation>
  /** Open a session for a language; returns its id. */
  readonly openSession: (language: Language) => string
  /** Dispose a session's state; unknown ids are ignored. A call of the session still waiting for a worker rejects. */
  readonly closeSession: (session: string) => void
  /** Start the workers of a language now and wait until they are loaded. */
  readonly warm: (language: Language) => Promise<void>
  /** Terminate every worker; pending and later calls reject with {@link SandboxError}. Resolves once the threads are gone. */
  readonly close: () => Promise<void>
  /** What the pool holds now (for tests and diagnostics). */
  readonly stats: () => PoolStats
}

/** A snapshot of a pool: its workers by state, its waiting calls, the threads still exiting. */
export interface PoolStats {
  readonly workers: Readonly<Record<Language, ReadonlyArray<"starting" | "idle" | "busy">>>
  readonly queued: number
  readonly exiting: number
  readonly closed: boolean
}

interface Job {
  readonly language: Language
  readonly code: string
  readonly session: string | null
  readonly timeoutMs: number
  readonly memoryMb: number
  readonly resolve: (observation: Observation) => void
  readonly reject: (error: SandboxError) => void
}

interface Active {
  readonly id: number
  readonly job: Job
  readonly startedAt: number
  readonly timers: Array<NodeJS.Timeout>
  interrupted: boolean
}

interface Slot {
  readonly language: Language
  readonly worker: Worker
  readonly interrupt: Int32Array
  /** The current call's output, written by the worker, readable here even after terminating it. */
  readonly output: OutputCapture
  state: "starting" | "idle" | "busy" | "dead"
  active: Active | null
  /** Settles when the worker is loaded (or can never be). */
  readonly ready: Promise<void>
  readonly settleStart: (error: SandboxError | null) => void
  startTimer: NodeJS.Timeout | null
  /** Resolves on the thread's `exit` event, whoever stopped it. */
  readonly exited: Promise<void>
}

/** Why a worker is taken out of service, and what its call (if any) gets. */
type Stop =
  | { readonly type: "died"; readonly kind: "timeout" | "memory" | "crash"; readonly error: string }
  | { readonly type: "start-failed"; readonly error: SandboxError }
  | { readonly type: "closed"; readonly error: SandboxError }
  | { readonly type: "retired" }

// Bootstraps a worker: import the entry directly (compiled JS, or TypeScript when the
// host already runs under tsx), else register tsx inside the worker and retry.
const bootstrap = `
const { workerData, parentPort } = require("node:worker_threads")
const start = async () => {
  try {
    await import(workerData.entry)
  } catch (e) {
    if (!e || e.code !== "ERR_UNKNOWN_FILE_EXTENSION" || !workerData.tsx) throw e
    const tsx = await import(workerData.tsx)
    tsx.register()
    await import(workerData.entry + "?tsx") // a new URL: the failed import stays cached under the old one
  }
}
start().catch((e) => parentPort.postMessage({ type: "start-failed", error: String((e && e.stack) || e) }))
`

const workerEntry = new URL(import.meta.url.endsWith(".ts") ? "./worker.ts" : "./worker.js", import.meta.url).href

const tsxApi = (): string | null => {
  try {
    // The ESM build of tsx's API (the CommonJS one cannot register hooks in a worker).
    return new URL("./dist/esm/api/index.mjs", pathToFileURL(createRequire(import.meta.url).resolve("tsx/package.json"))).href
  } catch {
    return null // running compiled JavaScript without tsx installed
  }
}

const now = (): number => performance.now()

/**
 * Create a pool of sandbox workers.
 *
 * @example
 * const pool = createSandboxPool({ size: 2 })
 * const obs = await pool.run({ language: "js", code: "4821*97" }) // { ok: true, stdout: "", value: "467637", durationMs: 3 }
 * await pool.close()
 */
export const createSandboxPool = (options: SandboxPoolOptions = {}): SandboxPool => {
  const limits = decodeLimits(options.limits)
  const size = Math.max(1, Math.floor(options.size ?? 2))
  const startTimeoutMs = options.startTimeoutMs ?? 60_000
  const closeTimeoutMs = options.closeTimeoutMs ?? 10_000
  const workerHeapMb = options.workerHeapMb ?? 512
  const tsx = tsxApi()
  const entry = options.workerEntry ?? workerEntry
  const slots: Record<Language, Array<Slot>> = { js: [], python: [] }
  const queues: Record<Language, Array<Job>> = { js: [], python: [] }
  const sessions = new Map<string, { readonly language: Language; slot: Slot | null }>()
  /** Stopped workers whose thread has not exited yet (close waits for them too). */
  const exiting = new Set<Slot>()
  let nextId = 1
  let nextSession = 1
  let closed = false
  let closing: Promise<void> | null = null

  const spawn = (language: Language): Slot => {
    const interruptBuffer = new SharedArrayBuffer(4)
    const output = OutputCapture.shared(limits.outputLimitBytes)
    const init: WorkerInit = {
      language,
      interrupt: interruptBuffer,
      output: output.buffer,
      outputLimitBytes: limits.outputLimitBytes,
      pythonRecursionLimit: limits.pythonRecursionLimit,
      jsStackBytes: limits.jsStackBytes,
    }
    const worker = new Worker(bootstrap, {
      eval: true,
      workerData: { ...init, entry, tsx },
      env: {}, // the guest's thread never sees the host's environment
      stdout: true, // worker console output is drained, never shown on the host's stdout
      stderr: true,
      resourceLimits: { maxOldGenerationSizeMb: workerHeapMb, stackSizeMb: 4 },
    })
    worker.stdout.resume()
    worker.stderr.resume()
    let settleStart: (error: SandboxError | null) => void = () => undefined
    const ready = new Promise<void>((resolve, reject) => {
      settleStart = (error) => (error === null ? resolve() : reject(error))
    })
    ready.catch(() => undefined) // observed by warm(); a start nobody waits for must not be an unhandled rejection
    let markExited: () => void = () => undefined
    const exited = new Promise<void>((resolve) => {
      markExited = resolve
    })
    const slot: Slot = {
      language,
      worker,
      interrupt: new Int32Array(interruptBuffer),
      output,
      state: "starting",
      active: null,
      ready,
      settleStart,
      startTimer: null,
      exited,
    }
    slot.startTimer = setTimeout(() => startFailed(slot, `the ${language} worker did not load within ${startTimeoutMs} ms`), startTimeoutMs)

    worker.on("message", (message: WorkerMessage) => {
      if (slot.state === "dead") return // a late message from a worker already taken out
      if (message.type === "ready") {
        if (slot.state !== "starting") return
        if (slot.startTimer !== null) clearTimeout(slot.startTimer)
        slot.startTimer = null
        slot.state = "idle"
        worker.unref()
        slot.settleStart(null)
        dispatch(language)
      } else if (message.type === "start-failed") {
        startFailed(slot, message.error)
      } else {
        finish(slot, message.id, message.outcome, message.retire)
      }
    })
    worker.on("error", (error: Error & { code?: string }) => {
      if (slot.state === "starting") return startFailed(slot, error.message)
      const memory = error.code === "ERR_WORKER_OUT_OF_MEMORY"
      died(slot, memory ? "memory" : "crash", memory ? `the guest exhausted its worker's memory (${error.message})` : `the worker crashed: ${error.message}`)
    })
    worker.on("exit", (code) => {
      markExited()
      exiting.delete(slot)
      if (slot.state === "starting") startFailed(slot, `the worker exited with code ${code}`)
      else died(slot, "crash", `the worker exited with code ${code}`)
    })
    slots[language].push(slot)
    return slot
  }

  /**
   * Take a worker out of service, once: answer its call, settle its start, clear its
   * timers, unpin its sessions and terminate its thread. Returns false if it was out already.
   */
  const stop = (slot: Slot, why: Stop): boolean => {
    if (slot.state === "dead") return false
    const wasStarting = slot.state === "starting"
    slot.state = "dead"
    if (slot.startTimer !== null) clearTimeout(slot.startTimer)
    slot.startTimer = null
    const list = slots[slot.language]
    const at = list.indexOf(slot)
    if (at >= 0) list.splice(at, 1)
    for (const entry of sessions.values()) if (entry.slot === slot) entry.slot = null
    const active = slot.active
    slot.active = null
    if (active !== null) {
      for (const timer of active.timers) clearTimeout(timer)
      if (why.type === "died") {
        active.job.resolve({ ok: false, kind: why.kind, error: why.error, stdout: slot.output.text(), durationMs: now() - active.startedAt })
      } else if (why.type === "closed" || why.type === "start-failed") {
        active.job.reject(why.error)
      } else {
        // Retired between calls never has a call; if one were here it must not hang.
        active.job.reject(new SandboxError({ reason: `the ${slot.language} worker was retired while a call ran` }))
      }
    }
    if (wasStarting) {
      const error = why.type === "start-failed" || why.type === "closed"
        ? why.error
        : new SandboxError({ reason: `the ${slot.language} worker stopped while it loaded` })
      slot.settleStart(error)
    }
    exiting.add(slot)
    slot.exited.then(() => exiting.delete(slot), () => undefined)
    // Node keeps a terminating worker referenced until it exits; its 'exit' event settles `exited`.
    slot.worker.terminate().catch(() => undefined)
    return true
  }

  /** Start replacements when calls wait for a worker of this language, then hand out work. */
  const replenish = (language: Language): void => {
    if (closed) return
    if (queues[language].length > 0) ensureSlots(language)
    dispatch(language)
  }

  const startFailed = (slot: Slot, reason: string): void => {
    const error = new SandboxError({ reason: `cannot start a ${slot.language} worker: ${reason}` })
    if (!stop(slot, { type: "start-failed", error })) return
    // No worker of this language is left to serve: fail the waiting calls instead of
    // starting workers that fail again. The next call tries again.
    if (slots[slot.language].length === 0) {
      for (const job of queues[slot.language].splice(0)) job.reject(error)
      return
    }
    dispatch(slot.language)
  }

  /** A worker died or was killed: answer its caller, move on. */
  const died = (slot: Slot, kind: "timeout" | "memory" | "crash", error: string): void => {
    if (!stop(slot, { type: "died", kind, error })) return
    replenish(slot.language)
  }

  const finish = (slot: Slot, id: number, outcome: GuestOutcome, retireAfter: boolean): void => {
    const active = slot.active
    if (active === null || active.id !== id) return
    for (const timer of active.timers) clearTimeout(timer)
    slot.active = null
    const durationMs = now() - active.startedAt
    const deadlineError = `execution exceeded the ${active.job.timeoutMs} ms deadline`
    let observation: Observation
    if (active.interrupted && (outcome.ok || outcome.kind === "timeout" || outcome.kind === "error")) {
      // The host raised the interrupt: whatever the guest did with it, the call timed out.
      observation = { ok: false, kind: "timeout", error: deadlineError, stdout: outcome.stdout, durationMs }
    } else if (outcome.ok) {
      observation = outcome.value === null
        ? { ok: true, stdout: outcome.stdout, durationMs }
        : { ok: true, stdout: outcome.stdout, value: outcome.value, durationMs }
    } else {
      const error = outcome.kind === "timeout" ? deadlineError : outcome.error
      observation = { ok: false, kind: outcome.kind, error, stdout: outcome.stdout, durationMs }
    }
    if (retireAfter) {
      stop(slot, { type: "retired" })
    } else {
      slot.state = "idle"
      slot.worker.unref()
    }
    active.job.resolve(observation)
    replenish(slot.language)
  }

  const ensureSlots = (language: Language): void => {
    while (!closed && slots[language].length < size) spawn(language)
  }

  const pick = (job: Job): Slot | null => {
    const idle = slots[job.language].filter((s) => s.state === "idle")
    if (job.session === null) return idle[0] ?? null
    const entry = sessions.get(job.session)
    if (entry === undefined) return null
    if (entry.slot !== null) return entry.slot.state === "idle" ? entry.slot : null
    // Pin a new (or orphaned) session to the idle worker holding the fewest sessions.
    const load = (s: Slot): number => [...sessions.values()].filter((e) => e.slot === s).length
    const best = idle.sort((a, b) => load(a) - load(b))[0] ?? null
    if (best !== null) entry.slot = best
    return best
  }

  const dispatch = (language: Language): void => {
    const queue = queues[language]
    for (let i = 0; i < queue.length; i++) {
      const job = queue[i]!
      const slot = pick(job)
      if (slot === null) continue
      queue.splice(i, 1)
      i--
      start(slot, job)
    }
  }

  const start = (slot: Slot, job: Job): void => {
    slot.state = "busy"
    slot.worker.ref()
    Atomics.store(slot.interrupt, 0, 0)
    // Also cleared here, not only by the worker: one that dies before it starts this call
    // must not report the previous call's output.
    slot.output.reset()
    const active: Active = { id: nextId++, job, startedAt: now(), timers: [], interrupted: false }
    slot.active = active
    active.timers.push(
      setTimeout(() => {
        if (job.language === "python" && slot.active === active) {
          active.interrupted = true
          Atomics.store(slot.interrupt, 0, 2) // SIGINT: KeyboardInterrupt at the next bytecode check
        }
      }, job.timeoutMs),
      setTimeout(() => {
        if (slot.active === active) died(slot, "timeout", `execution exceeded the ${job.timeoutMs} ms deadline; the worker was terminated`)
      }, job.timeoutMs + limits.graceMs),
    )
    const message: HostMessage = { type: "run", id: active.id, code: job.code, session: job.session, timeoutMs: job.timeoutMs, memoryMb: job.memoryMb }
    try {
      slot.worker.postMessage(message)
    } catch (cause) {
      died(slot, "crash", `the worker could not take the call: ${cause instanceof Error ? cause.message : String(cause)}`)
    }
  }

  const openSession = (language: Language): string => {
    if (closed) throw new SandboxError({ reason: "openSession: the sandbox pool is closed" })
    const id = `session-${nextSession++}`
    sessions.set(id, { language, slot: null })
    return id
  }

  const run = (request: SandboxRequest): Promise<Observation> =>
    new Promise<Observation>((resolve, reject) => {
      if (closed) return reject(new SandboxError({ reason: "run: the sandbox pool is closed" }))
      if (request.language !== "js" && request.language !== "python") {
        return reject(new SandboxError({ reason: `run: unknown language "${String(request.language)}" (known: js, python)` }))
      }
      let session: string | null = null
      if (request.session !== undefined) {
        const entry = sessions.get(request.session)
        if (entry === undefined) sessions.set(request.session, { language: request.language, slot: null })
        else if (entry.language !== request.language) {
          return reject(new SandboxError({ reason: `run: session "${request.session}" is a ${entry.language} session, not ${request.language}` }))
        }
        session = request.session
      }
      queues[request.language].push({
        language: request.language,
        code: request.code,
        session,
        timeoutMs: clampLimit(request.timeoutMs, limits.timeoutMs, maxTimeoutMs),
        memoryMb: clampLimit(request.memoryMb, limits.memoryMb, maxMemoryMb),
        resolve,
        reject,
      })
      ensureSlots(request.language)
      dispatch(request.language)
    })

  const closeSession = (session: string): void => {
    const entry = sessions.get(session)
    if (entry === undefined) return
    sessions.delete(session)
    // A call of this session still waiting would otherwise wait forever (no worker holds it now).
    const queue = queues[entry.language]
    const waiting = queue.filter((job) => job.session === session)
    if (waiting.length > 0) {
      queues[entry.language] = queue.filter((job) => job.session !== session)
      const error = new SandboxError({ reason: `run: session "${session}" was closed while its call waited for a worker` })
      for (const job of waiting) job.reject(error)
    }
    if (entry.slot !== null && entry.slot.state !== "dead") {
      const message: HostMessage = { type: "close-session", session }
      entry.slot.worker.postMessage(message)
    }
  }

  const warm = async (language: Language): Promise<void> => {
    if (closed) throw new SandboxError({ reason: "warm: the sandbox pool is closed" })
    ensureSlots(language)
    await Promise.all(slots[language].map((s) => s.ready))
  }

  /** Wait until every stopped thread has exited, or `closeTimeoutMs`; unreference the stragglers. */
  const awaitExits = async (): Promise<void> => {
    const pending = [...exiting]
    if (pending.length === 0) return
    let timer: NodeJS.Timeout | null = null
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, closeTimeoutMs)
    })
    await Promise.race([Promise.all(pending.map((s) => s.exited)), timedOut])
    if (timer !== null) clearTimeout(timer)
    // A thread stuck in native code must not keep the process alive after close.
    for (const slot of exiting) slot.worker.unref()
  }

  const close = (): Promise<void> => {
    if (closing !== null) return closing
    closed = true
    const error = new SandboxError({ reason: "the sandbox pool was closed while the call waited" })
    for (const language of ["js", "python"] as const) for (const job of queues[language].splice(0)) job.reject(error)
    for (const slot of [...slots.js, ...slots.python]) stop(slot, { type: "closed", error })
    closing = awaitExits()
    return closing
  }

  const stats = (): PoolStats => {
    const states = (language: Language) => slots[language].flatMap((s) => (s.state === "dead" ? [] : [s.state]))
    return { workers: { js: states("js"), python: states("python") }, queued: queues.js.length + queues.python.length, exiting: exiting.size, closed }
  }

  return { run, openSession, closeSession, warm, close, stats }
}
