/**
 * Progress of a long run: a live line on a terminal, plain lines otherwise.
 *
 * @category constructors
 */

const fmt = (x: number | undefined, digits = 3): string => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits))

const clock = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds))
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
}

/** Step, reward, accuracy, tokens/s and ETA. */
export class Progress {
  private readonly started = performance.now()
  private lastLine = ""

  constructor(
    private readonly total: number,
    private readonly tty: boolean,
    private readonly log: (line: string) => void,
  ) {}

  /** Report a finished step. */
  update(step: number, metrics: Readonly<Record<string, number>>): void {
    const elapsed = (performance.now() - this.started) / 1000
    const eta = step > 0 ? (elapsed / step) * (this.total - step) : 0
    const line =
      `step ${step}/${this.total}  reward ${fmt(metrics["reward/mean"])}  accuracy ${fmt(metrics["outcome/accuracy"])}` +
      `  turns ${fmt(metrics["turns/mean"], 2)}  tok/s ${fmt(metrics["tokens_per_s"], 0)}  ETA ${clock(eta)}`
    if (this.tty) {
      process.stdout.write(`\r${line.padEnd(this.lastLine.length)}`)
      this.lastLine = line
    } else {
      this.log(line)
    }
  }

  /** End the live line. */
  done(): void {
    if (this.tty && this.lastLine !== "") process.stdout.write("\n")
  }
}
