// API keys in the page. EventSource and the browser's WebSocket cannot send an
// Authorization header, so the page trades the key (POST /auth/token, the one
// request that carries it) for a short-lived token and puts the token in URLs
// (?access_token=). The key stays in its field; it is never put in a URL.

let required = null; // unknown until probed
let cached = null; // {key, token, expiresAt}

/** Whether this server needs a key (asks POST /auth/token with none). */
export async function keyRequired() {
  if (required !== null) return required;
  try {
    const response = await fetch("/auth/token", { method: "POST" });
    required = response.status === 401 || (response.ok && (await response.json()).required === true);
  } catch {
    required = false; // unreachable: the run itself will say so
  }
  return required;
}

/** A token for `key` ("" when the server needs none); throws Error with a readable message. */
export async function accessToken(key) {
  if (!(await keyRequired())) return "";
  if (!key) throw new Error("This server needs an API key: enter it in the API key field.");
  const now = Date.now();
  if (cached && cached.key === key && cached.expiresAt - now > 60_000) return cached.token;
  let response;
  try {
    response = await fetch("/auth/token", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}` },
    });
  } catch (error) {
    throw new Error(`Could not reach the server (${error.message}).`);
  }
  if (response.status === 401) throw new Error("The server refused this API key.");
  if (!response.ok) throw new Error(`Getting a token failed (HTTP ${response.status}).`);
  const grant = await response.json();
  cached = { key, token: grant.token, expiresAt: now + grant.expires_in * 1000 };
  return grant.token;
}

/** `path` with ?access_token= added when there is a token. */
export function withToken(path, token) {
  if (!token) return path;
  return `${path}${path.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}`;
}
