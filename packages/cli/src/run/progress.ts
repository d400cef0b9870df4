/**
 * Progress of a long run: a live line on a terminal, plain lines otherwise.
 *
 * Steps show reward, accuracy, tokens/s and ETA. Held-out evaluations (before
 * training, every `evalEvery` steps, at the end) take seconds to minutes, so each
 * shows what it is doing and, on a terminal, a clock while it runs; its result is
 * printed when its record arrives.
 *
 * @category constructors
 */
import type { LoggedRecord } from "./metrics-log.js"

const fmt = (x: number | undefined, digits = 3): string => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits))

const clock = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds))
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
}

/** Where progress goes: a live line on a terminal, or one log line per event. */
export interface ProgressOutput {
  readonly tty: boolean
  readonly log: (line: string) => void
  /** Raw terminal output for the live line (default: process.stdout). */
  readonly write?: (text: string) => void
}

/** Step, reward, accuracy, tokens/s and ETA; evaluations with a clock and their result. */
export class Progress {
  private readonly write: (text: string) => void
  private lastLine = ""
  /** When the first step of this process began (the ETA's base). */
  private trainingStarted: number | undefined
  /** The clock of a running step or evaluation on a terminal. */
  private timer: ReturnType<typeof setInterval> | undefined
  private evaluation: { readonly label: string; readonly text: string; readonly started: number; finished: number } | undefined

  constructor(
    private readonly total: number,
    private readonly output: ProgressOutput,
    private readonly schedule: { readonly evalEvery: number; readonly heldout: number; readonly firstStep?: number } = { evalEvery: 0, heldout: 0 },
  ) {
    this.write = output.write ?? ((text) => void process.stdout.write(text))
  }

  private live(line: string): void {
    this.write(`\r${line.padEnd(this.lastLine.length)}`)
    this.lastLine = line
  }

  private endLive(): void {
    if (this.lastLine !== "") this.write("\n")
    this.lastLine = ""
  }

  /** Redraw with `draw` every second until {@link Progress.stopClock}; never keeps the process alive on its own. */
  private startClock(draw: () => void): void {
    this.stopClock()
    draw()
    this.timer = setInterval(draw, 1000)
    this.timer.unref()
  }

  private stopClock(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** A training step began: on a terminal, the live line gets the running step's clock. */
  stepStarted(step: number): void {
    this.trainingStarted ??= performance.now()
    if (!this.output.tty) return
    const started = performance.now()
    const last = this.lastLine
    this.startClock(() => this.live(`${last === "" ? "" : `${last}  |  `}step ${step} running ${clock((performance.now() - started) / 1000)}`))
  }

  /** Report a finished step; starts the evaluation display when one follows this step. */
  update(step: number, metrics: Readonly<Record<string, number>>): void {
    this.stopClock()
    const elapsed = (performance.now() - (this.trainingStarted ?? performance.now())) / 1000
    const done = step - (this.schedule.firstStep ?? 0)
    const eta = done > 0 ? (elapsed / done) * (this.total - step) : 0
    const line = `step ${step}/${this.total}  reward ${fmt(metrics["reward/mean"])}  accuracy ${fmt(metrics["outcome/accuracy"])}` +
      `  turns ${fmt(metrics["turns/mean"], 2)}  tok/s ${fmt(metrics["tokens_per_s"], 0)}  ETA ${clock(eta)}`
    if (this.output.tty) this.live(line)
    else this.output.log(line)
    const due = (this.schedule.evalEvery > 0 && step % this.schedule.evalEvery === 0) || step === this.total
    if (due) this.startEvaluation(step === this.total ? `after training (step ${step})` : `at step ${step}`)
    else this.stepStarted(step + 1)
  }

  /** Show that a held-out evaluation is running (ends with {@link Progress.record} of its result). */
  startEvaluation(label: string): void {
    this.stopClock()
    const text = `evaluating ${this.schedule.heldout} held-out problems ${label}`
    this.evaluation = { label, text, started: performance.now(), finished: 0 }
    if (!this.output.tty) {
      this.output.log(`${text} ...`)
      return
    }
    this.endLive()
    this.startClock(() => this.drawEvaluation())
  }

  /** A sampling session of `rows` sequences ended: during an evaluation, that many problems are done. */
  sessionClosed(rows: number): void {
    if (this.evaluation === undefined) return
    this.evaluation.finished = Math.min(this.schedule.heldout, this.evaluation.finished + rows)
    if (this.output.tty) this.drawEvaluation()
  }

  private drawEvaluation(): void {
    const e = this.evaluation
    if (e === undefined) return
    this.live(`${e.text}  ${e.finished}/${this.schedule.heldout}  ${clock((performance.now() - e.started) / 1000)}`)
  }

  /** A metrics record arrived: an evaluation's result is printed. */
  record(record: LoggedRecord): void {
    if (record.phase !== "eval") return
    const label = this.evaluation?.label ?? (record.step === 0 ? "before training" : `at step ${record.step}`)
    const seconds = this.evaluation === undefined ? undefined : (performance.now() - this.evaluation.started) / 1000
    this.stopClock()
    this.evaluation = undefined
    const m = record.metrics
    const line = `held-out accuracy ${label}: ${fmt(m["outcome/accuracy"])}  answer rate ${fmt(m["finish/answer_rate"])}` +
      `  turns ${fmt(m["turns/mean"], 2)}  tool errors ${fmt(m["tool/error_rate"])}${seconds === undefined ? "" : `  (${seconds.toFixed(0)} s)`}`
    if (this.output.tty) {
      this.live(line)
      this.endLive()
    } else {
      this.output.log(line)
    }
    // A mid-run evaluation: training goes on with the next step.
    if (record.step > 0 && record.step < this.total) this.stepStarted(record.step + 1)
  }

  /** End the live line and any clock. */
  done(): void {
    this.stopClock()
    this.evaluation = undefined
    if (this.output.tty) this.endLive()
  }
}
