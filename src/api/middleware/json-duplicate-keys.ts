/**
 * JSON.parse keeps the last of two equal keys (`{"amount":1,"amount":1000}` reads as 1000), and
 * another parser in front of or behind us might keep the first. Such bodies are refused (RFC 7493,
 * I-JSON: names must be unique) so that everyone reads a request the same way.
 */

/** The first key that repeats within one object of `text`, or null. Malformed text is left to JSON.parse. */
export function findDuplicateKey(text: string): string | null {
  // One entry per open object ({} → its keys so far) or array ([] → null).
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  let i = 0;
  while (i < text.length) {
    const char = text[i];
    if (char === '"') {
      let end = i + 1;
      let escaped = false;
      while (end < text.length && text[end] !== '"') {
        if (text[end] === '\\') {
          escaped = true;
          end += 2;
        } else {
          end += 1;
        }
      }
      if (end >= text.length) return null;
      const keys = stack.at(-1);
      if (expectKey && keys) {
        let key = text.slice(i + 1, end);
        if (escaped) {
          try {
            key = JSON.parse(text.slice(i, end + 1)) as string;
          } catch {
            return null;
          }
        }
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (char === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (char === '[') {
      stack.push(null);
      expectKey = false;
    } else if (char === '}' || char === ']') {
      stack.pop();
      expectKey = false;
    } else if (char === ',') {
      expectKey = Boolean(stack.at(-1));
    }
    i += 1;
  }
  return null;
}
