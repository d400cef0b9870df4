/**
 * Settings declared once: each field of a configuration section is its Schema, its
 * default and its one-line doc, written together. Decoding fills in what the input
 * leaves out, so no code merges defaults by hand, and the doc travels with the
 * Schema as its `description` (the command line's `--help` lists it).
 *
 * @example
 * const Train = section({
 *   steps: setting(Schema.Int, 60, "Training steps"),
 * })
 * Schema.decodeUnknownSync(Train)({})          // { steps: 60 }
 * Schema.decodeUnknownSync(Train)({ steps: 3 }) // { steps: 3 }
 *
 * @category constructors
 */
import { Effect, Schema } from "effect"

/**
 * One setting: a Schema whose key may be left out (it then decodes to `value`),
 * annotated with its doc.
 */
export const setting = <S extends Schema.Top>(schema: S, value: S["Type"], description: string) =>
  Schema.withDecodingDefaultTypeKey<S["Rebuild"]>(Effect.succeed(value))(Schema.annotate<S>({ description })(schema))

/** A section of settings; left out as a whole, it decodes to all its defaults. */
export const section = <Fields extends Schema.Struct.Fields>(fields: Fields, description: string) =>
  Schema.Struct(fields).annotate({ description }).pipe(
    // Every field has a default, so an empty object is a complete encoded section.
    Schema.withDecodingDefaultKey(Effect.succeed({} as Schema.Struct.Encoded<Fields>)),
  )

/** The value of a settings Schema when the input sets nothing: every default. */
export const defaultsOf = <T>(schema: Schema.Codec<T, unknown>): T => Schema.decodeUnknownSync(schema)({})
