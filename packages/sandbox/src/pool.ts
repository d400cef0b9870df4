/**
 * A pool of sandbox workers, and its plain Promise API.
 *
 * Each language has up to `size` worker threads (started on first use, or by
 * `warm`). A request waits for an idle worker; a session is pinned to the worker
 * that holds its state. The host owns the deadline: at `timeoutMs` it raises the
 * interrupt in a Python worker (QuickJS interrupts itself), and `graceMs` later it
 * terminates a worker that is still busy and starts a replacement. A worker that
 * dies (uncaught error, JS heap exhausted) is replaced the same way; its caller gets
 * an observation of kind "crash" (or "memory"), never a rejected promise. Either way
 * the observation keeps what the guest printed before the worker stopped: each worker
 * writes its output into memory it shares with the host. Promises
 * reject only with {@link SandboxError}, when the sandbox itself cannot serve
 * (a worker that cannot start, a closed pool, a session used with the wrong language).
 *
 * When a worker holding sessions is replaced, those sessions continue on a fresh
 * interpreter state, like a notebook whose kernel restarted.
 *
 * @category constructors
 */
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import { clampLimit, defaultLimits, maxMemoryMb, maxTimeoutMs } from "./limits.js"
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
}

/** The Promise API shared by the Effect service and non-Effect callers. */
export interface SandboxPool {
  /** Run one cell; resolves with what the guest did, rejects only with {@link SandboxError}. */
  readonly run: (request: SandboxRequest) => Promise<Observation>
  /** Open a session for a language; returns its id. */
  readonly openSession: (language: Language) => string
  /** Dispose a session's state; unknown ids are ignored. */
  readonly closeSession: (session: string) => void
  /** Start the workers of a language now and wait until they are loaded. */
  readonly warm: (language: Language) => Promise<void>
  /** Terminate every worker; pending and later calls reject with {@link SandboxError}. */
  readonly close: () => Promise<void>
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
  readonly ready: Promise<void>
}

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
  const limits: SandboxLimits = { ...defaultLimits, ...options.limits }
  const size = Math.max(1, Math.floor(options.size ?? 2))
  const startTimeoutMs = options.startTimeoutMs ?? 60_000
  const workerHeapMb = options.workerHeapMb ?? 512
  const tsx = tsxApi()
  const slots: Record<Language, Array<Slot>> = { js: [], python: [] }
  const queues: Record<Language, Array<Job>> = { js: [], python: [] }
  const sessions = new Map<string, { readonly language: Language; slot: Slot | null }>()
  let nextId = 1
  let nextSession = 1
  let closed = false

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
      workerData: { ...init, entry: workerEntry, tsx },
      env: {}, // the guest's thread never sees the host's environment
      stdout: true, // worker console output is drained, never shown on the host's stdout
      stderr: true,
      resourceLimits: { maxOldGenerationSizeMb: workerHeapMb, stackSizeMb: 4 },
    })
    worker.stdout.resume()
    worker.stderr.resume()
    let markReady: () => void = () => undefined
    let markFailed: (error: SandboxError) => void = () => undefined
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve
      markFailed = reject
    })
    ready.catch(() => undefined) // observed through failStart; avoid an unhandled rejection
    const slot: Slot = { language, worker, interrupt: new Int32Array(interruptBuffer), output, state: "starting", active: null, ready }
    const startTimer = setTimeout(() => {
      failStart(slot, `the ${language} worker did not load within ${startTimeoutMs} ms`)
    }, startTimeoutMs)

    const failStart = (s: Slot, reason: string): void => {
      if (s.state !== "starting") return
      clearTimeout(startTimer)
      const error = new SandboxError({ reason: `cannot start a ${language} worker: ${reason}` })
      retire(s)
      markFailed(error)
      // No worker of this language is left to serve: fail the waiting calls instead of hanging.
      if (slots[language].length === 0) for (const job of queues[language].splice(0)) job.reject(error)
    }

    worker.on("message", (message: WorkerMessage) => {
      if (message.type === "ready") {
        clearTimeout(startTimer)
        slot.state = "idle"
        worker.unref()
        markReady()
        dispatch(language)
      } else if (message.type === "start-failed") {
        failStart(slot, message.error)
      } else {
        finish(slot, message.id, message.outcome, message.retire)
      }
    })
    worker.on("error", (error: Error & { code?: string }) => {
      if (slot.state === "starting") return failStart(slot, error.message)
      const memory = error.code === "ERR_WORKER_OUT_OF_MEMORY"
      died(slot, memory ? "memory" : "crash", memory ? `the guest exhausted its worker's memory (${error.message})` : `the worker crashed: ${error.message}`)
    })
    worker.on("exit", (code) => {
      if (slot.state === "starting") return failStart(slot, `the worker exited with code ${code}`)
      died(slot, "crash", `the worker exited with code ${code}`)
    })
    slots[language].push(slot)
    return slot
  }

  /** Remove a slot from service and terminate its thread. */
  const retire = (slot: Slot): void => {
    if (slot.state === "dead") return
    slot.state = "dead"
    const list = slots[slot.language]
    const at = list.indexOf(slot)
    if (at >= 0) list.splice(at, 1)
    for (const entry of sessions.values()) if (entry.slot === slot) entry.slot = null
    void slot.worker.terminate()
  }

  /** A busy worker died or was killed: answer its caller, replace it, move on. */
  const died = (slot: Slot, kind: "timeout" | "memory" | "crash", error: string): void => {
    if (slot.state === "dead") return
    const active = slot.active
    slot.active = null
    retire(slot)
    if (active !== null) {
      for (const timer of active.timers) clearTimeout(timer)
      active.job.resolve({ ok: false, kind, error, stdout: slot.output.text(), durationMs: now() - active.startedAt })
    }
    if (!closed) {
      ensureSlots(slot.language)
      dispatch(slot.language)
    }
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
      retire(slot)
      if (!closed) ensureSlots(slot.language)
    } else {
      slot.state = "idle"
      slot.worker.unref()
    }
    active.job.resolve(observation)
    dispatch(slot.language)
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
        if (job.language === "python") {
          active.interrupted = true
          Atomics.store(slot.interrupt, 0, 2) // SIGINT: KeyboardInterrupt at the next bytecode check
        }
      }, job.timeoutMs),
      setTimeout(() => {
        died(slot, "timeout", `execution exceeded the ${job.timeoutMs} ms deadline; the worker was terminated`)
      }, job.timeoutMs + limits.graceMs),
    )
    const message: HostMessage = { type: "run", id: active.id, code: job.code, session: job.session, timeoutMs: job.timeoutMs, memoryMb: job.memoryMb }
    slot.worker.postMessage(message)
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

  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    const error = new SandboxError({ reason: "the sandbox pool was closed while the call waited" })
    const all = [...slots.js, ...slots.python]
    for (const language of ["js", "python"] as const) for (const job of queues[language].splice(0)) job.reject(error)
    for (const slot of all) {
      const active = slot.active
      slot.active = null
      if (active !== null) {
        for (const timer of active.timers) clearTimeout(timer)
        active.job.reject(error)
      }
      slot.state = "dead"
    }
    slots.js = []
    slots.python = []
    await Promise.all(all.map((s) => s.worker.terminate()))
  }

  return { run, openSession, closeSession, warm, close }
}
