/**
 * Whether a string holds a C0 control character or DEL: NUL, which Postgres cannot store in text,
 * and the others, which no client or WeChat field has a reason to carry.
 */
export function hasControlCharacters(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}
