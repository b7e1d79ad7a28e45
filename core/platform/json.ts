/** How descent stores JSON documents: pretty-printed UTF-8 with a final newline. */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const toJson = (value: unknown): Uint8Array => encoder.encode(`${JSON.stringify(value, null, 2)}\n`);
export const fromJson = (body: Uint8Array): unknown => JSON.parse(decoder.decode(body));
