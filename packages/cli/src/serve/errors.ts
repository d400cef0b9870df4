/**
 * The served endpoint's request errors, each carrying the HTTP status and the fields
 * of OpenAI's error body (`{"error":{"message","type","param","code"}}`), so a client
 * written against the OpenAI API reports them as it would report OpenAI's own.
 *
 * @category errors
 */
import { Data } from "effect"

/** OpenAI's error types that this server answers with. */
export type ServeErrorType = "invalid_request_error" | "authentication_error" | "not_found_error" | "server_error"

/**
 * A request the server refuses (4xx) or could not serve (5xx); the server keeps serving.
 *
 * @example
 * throw new ServeRequestError({ status: 404, type: "not_found_error", param: null, code: "episode_not_found", message: "no episode \"e1\"" })
 */
export class ServeRequestError extends Data.TaggedError("ServeRequestError")<{
  readonly status: number
  readonly type: ServeErrorType
  /** The request field at fault (`messages[2].tool_call_id`), or null. */
  readonly param: string | null
  /** A stable machine-readable code (`context_length_exceeded`, `unknown_tool_call`). */
  readonly code: string
  readonly message: string
}> {}

/** An invalid request (400) about `param`. */
export const invalidRequest = (code: string, message: string, param: string | null = null): ServeRequestError =>
  new ServeRequestError({ status: 400, type: "invalid_request_error", param, code, message })

/** The JSON body OpenAI sends with an error. */
export const errorBody = (error: ServeRequestError) => ({
  error: { message: error.message, type: error.type, param: error.param, code: error.code },
})
