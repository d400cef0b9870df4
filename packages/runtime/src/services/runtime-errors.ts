/**
 * What the runtime's services say when tfjs fails: the error's message, and for the
 * wasm backend's bare "Aborted()" (its heap could not grow) the likely cause and the
 * setting that fixes it.
 *
 * @category errors
 */

/**
 * The readable reason of a runtime failure.
 *
 * @example
 * new PolicyError({ operation: "train", reason: describeRuntimeError(error) })
 */
export const describeRuntimeError = (error: unknown): string => {
  const message = error instanceof Error ? error.message : String(error)
  return message.startsWith("Aborted(")
    ? `${message} (the wasm backend most likely ran out of memory: lower optimizer.microBatchSize, e.g. --set optimizer.microBatchSize=8, or shorten rollout.maxTokens)`
    : message
}
