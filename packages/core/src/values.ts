/**
 * Typed per-turn and per-trajectory quantities flowing between stages.
 *
 * Rewards, returns and advantages are numbers laid out like the batch:
 * `[group][trajectory][turn]` for per-turn values, `[group][trajectory]` for
 * per-trajectory ones. The `level` and `quantity` tags make illegal pipelines fail to
 * compile: a discounted-return estimator accepts `PerTurn<"reward">`, GRPO's
 * group-relative estimator accepts `PerTrajectory<"return">`, and neither accepts an
 * advantage.
 *
 * @category models
 */
import { AlgorithmInputError } from "./errors.js"
import type { Batch } from "./model.js"

/** What a table of numbers means. */
export type Quantity = "reward" | "return" | "advantage"

/** One number per turn: `values[group][trajectory][turn]`. */
export interface PerTurn<Q extends Quantity> {
  readonly level: "turn"
  readonly quantity: Q
  readonly values: ReadonlyArray<ReadonlyArray<ReadonlyArray<number>>>
}

/** One number per trajectory: `values[group][trajectory]`. */
export interface PerTrajectory<Q extends Quantity> {
  readonly level: "trajectory"
  readonly quantity: Q
  readonly values: ReadonlyArray<ReadonlyArray<number>>
}

/** Either level. */
export type Values<Q extends Quantity> = PerTurn<Q> | PerTrajectory<Q>

/** Build a per-turn table. */
export const perTurn = <Q extends Quantity>(
  quantity: Q,
  values: ReadonlyArray<ReadonlyArray<ReadonlyArray<number>>>,
): PerTurn<Q> => ({ level: "turn", quantity, values })

/** Build a per-trajectory table. */
export const perTrajectory = <Q extends Quantity>(
  quantity: Q,
  values: ReadonlyArray<ReadonlyArray<number>>,
): PerTrajectory<Q> => ({ level: "trajectory", quantity, values })

/** A place in a batch, written the way error messages print it. */
export const where = (g: number, i?: number, j?: number): string =>
  [`group ${g}`, i === undefined ? null : `trajectory ${i}`, j === undefined ? null : `turn ${j}`]
    .filter((part) => part !== null)
    .join(", ")

/**
 * Check that a per-turn table has the batch's shape (same groups, trajectories and
 * turn counts) and holds only finite numbers; throws {@link AlgorithmInputError}.
 */
export const assertTurnShape = (fn: string, batch: Batch, table: PerTurn<Quantity>): void => {
  const values = table.values
  if (values.length !== batch.groups.length) {
    throw new AlgorithmInputError({ fn, where: "batch", problem: `${table.quantity}s have ${values.length} groups, the batch has ${batch.groups.length}` })
  }
  batch.groups.forEach((group, g) => {
    const rows = values[g]!
    if (rows.length !== group.trajectories.length) {
      throw new AlgorithmInputError({
        fn,
        where: where(g),
        problem: `${table.quantity}s have ${rows.length} trajectories, the group has ${group.trajectories.length}`,
      })
    }
    group.trajectories.forEach((trajectory, i) => {
      const row = rows[i]!
      if (row.length !== trajectory.turns.length) {
        throw new AlgorithmInputError({
          fn,
          where: where(g, i),
          problem: `${table.quantity}s have ${row.length} turns, the trajectory has ${trajectory.turns.length}`,
        })
      }
      row.forEach((v, j) => {
        if (!Number.isFinite(v)) throw new AlgorithmInputError({ fn, where: where(g, i, j), problem: `${table.quantity} is ${v}` })
      })
    })
  })
}

/**
 * Check that a batch has at least one group, every group at least one trajectory and
 * every trajectory at least one turn; throws {@link AlgorithmInputError}. Every
 * catalogue function needs this: an empty group has no mean, and a trajectory with
 * no turns has no tokens to train on.
 *
 * @example
 * assertNonEmptyBatch("discountedReturns", batch)
 */
export const assertNonEmptyBatch = (fn: string, batch: Batch): void => {
  if (batch.groups.length === 0) throw new AlgorithmInputError({ fn, where: "batch", problem: "the batch has no groups" })
  batch.groups.forEach((group, g) => {
    if (group.trajectories.length === 0) throw new AlgorithmInputError({ fn, where: where(g), problem: "the group is empty" })
    group.trajectories.forEach((trajectory, i) => {
      if (trajectory.turns.length === 0) throw new AlgorithmInputError({ fn, where: where(g, i), problem: "the trajectory has no turns" })
    })
  })
}

/**
 * Check that a per-trajectory table has the batch's shape (same groups and
 * trajectory counts) and holds only finite numbers; throws {@link AlgorithmInputError}.
 *
 * @example
 * assertTrajectoryShape("grpoAdvantages", batch, returns)
 */
export const assertTrajectoryShape = (fn: string, batch: Batch, table: PerTrajectory<Quantity>): void => {
  const values = table.values
  if (values.length !== batch.groups.length) {
    throw new AlgorithmInputError({ fn, where: "batch", problem: `${table.quantity}s have ${values.length} groups, the batch has ${batch.groups.length}` })
  }
  batch.groups.forEach((group, g) => {
    const row = values[g]!
    if (row.length !== group.trajectories.length) {
      throw new AlgorithmInputError({
        fn,
        where: where(g),
        problem: `${table.quantity}s have ${row.length} trajectories, the group has ${group.trajectories.length}`,
      })
    }
    row.forEach((v, i) => {
      if (!Number.isFinite(v)) throw new AlgorithmInputError({ fn, where: where(g, i), problem: `${table.quantity} is ${v}` })
    })
  })
}
