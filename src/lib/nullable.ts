// The one helper every TypeBox schema file wanted: a field that holds a value or null.
import { Type, type TSchema } from '@sinclair/typebox';

/** `t` or null (JSON Schema `anyOf: [t, { type: 'null' }]`). */
export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
