/**
 * Small text helpers the commands share: default run-directory names and numbers in
 * log lines.
 *
 * @category constructors
 */
import * as path from "node:path"

/** `20261127-164005`: sorts by time, safe in a directory name. */
const timestamp = (): string => new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-")

/**
 * The default run directory of a command: `runs/<prefix>-<timestamp>`.
 *
 * @example
 * defaultRunDir("gtpo") // "runs/gtpo-20261127-164005"
 */
export const defaultRunDir = (prefix: string): string => path.join("runs", `${prefix}-${timestamp()}`)

/** A metric with three decimals, or `-` when it is missing or not finite. */
export const fixed3 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(3))
