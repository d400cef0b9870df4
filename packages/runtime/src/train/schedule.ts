/**
 * Learning-rate schedules: linear warm-up, then cosine or linear decay to a floor.
 *
 * A schedule is a pure function of the optimizer step, so a resumed run computes the
 * same rates as an uninterrupted one without saving any schedule state.
 *
 * @category models
 */

/** Shape of the decay after warm-up. */
export type DecayKind = "cosine" | "linear" | "constant"

/** A warm-up-then-decay schedule. */
export interface ScheduleOptions {
  /** Rate reached at the end of warm-up. */
  readonly peakLr: number
  /** Updates spent ramping linearly from peakLr / warmupSteps up to peakLr. 0 = none. */
  readonly warmupSteps: number
  /** Update at which the decay reaches the floor (the rate stays there afterwards). */
  readonly totalSteps: number
  /** Cosine, linear or no decay. */
  readonly decay: DecayKind
  /** Floor reached at totalSteps. */
  readonly minLr: number
}

/**
 * The learning rate for the update with 0-based index `step`.
 *
 * Warm-up: lr = peakLr * (step + 1) / warmupSteps for step < warmupSteps (the first
 * update already moves). Decay: progress p = (step - warmupSteps) / (totalSteps -
 * warmupSteps), clamped to [0, 1]; cosine gives minLr + (peakLr - minLr) * (1 + cos(pi p)) / 2,
 * linear gives minLr + (peakLr - minLr) * (1 - p).
 *
 * @example
 * const s = { peakLr: 1e-3, warmupSteps: 10, totalSteps: 110, decay: "cosine", minLr: 1e-5 } as const
 * learningRate(s, 0)   // 1e-4
 * learningRate(s, 9)   // 1e-3
 * learningRate(s, 60)  // (1e-3 + 1e-5) / 2
 * learningRate(s, 500) // 1e-5
 */
export const learningRate = (schedule: ScheduleOptions, step: number): number => {
  const { peakLr, warmupSteps, totalSteps, decay, minLr } = schedule
  if (step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps
  if (decay === "constant") return peakLr
  const span = totalSteps - warmupSteps
  const progress = span <= 0 ? 1 : Math.min(1, Math.max(0, (step - warmupSteps) / span))
  const shape = decay === "cosine" ? (1 + Math.cos(Math.PI * progress)) / 2 : 1 - progress
  return minLr + (peakLr - minLr) * shape
}

/**
 * A constant rate (no warm-up, no decay), for tests and short experiments.
 *
 * @example
 * learningRate(constantSchedule(1e-3), 1234) // 1e-3
 */
export const constantSchedule = (lr: number): ScheduleOptions => ({
  peakLr: lr,
  warmupSteps: 0,
  totalSteps: 0,
  decay: "constant",
  minLr: lr,
})
