// TC3-HMAC-SHA256, the API 3.0 signature, with WebCrypto: the key never leaves this module's
// callers, and nothing here is sent but the signature itself.
const encoder = new TextEncoder();

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(text) {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

async function hmac(key, message) {
  const raw = typeof key === "string" ? encoder.encode(key) : key;
  const imported = await crypto.subtle.importKey(
    "raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", imported, encoder.encode(message)));
}

// The headers of a signed POST of `payload` (a JSON string) to this origin's `path`.
export async function signedHeaders({ secretId, secretKey, token, service, action, version,
  region, language, payload, host, timestamp }) {
  const ts = timestamp ?? Math.floor(Date.now() / 1000);
  const date = new Date(ts * 1000).toISOString().slice(0, 10);
  const contentType = "application/json";
  const canonical = [
    "POST", "/", "",
    `content-type:${contentType}\nhost:${host}\n`,
    "content-type;host",
    await sha256Hex(payload),
  ].join("\n");
  const scope = `${date}/${service}/tc3_request`;
  const toSign = ["TC3-HMAC-SHA256", String(ts), scope, await sha256Hex(canonical)].join("\n");
  const secretDate = await hmac(`TC3${secretKey}`, date);
  const secretService = await hmac(secretDate, service);
  const secretSigning = await hmac(secretService, "tc3_request");
  const signature = hex(await hmac(secretSigning, toSign));
  const headers = {
    "Content-Type": contentType,
    "X-TC-Action": action,
    "X-TC-Version": version,
    "X-TC-Timestamp": String(ts),
    "X-TC-Language": language,
    Authorization: `TC3-HMAC-SHA256 Credential=${secretId}/${scope}, ` +
      `SignedHeaders=content-type;host, Signature=${signature}`,
  };
  if (region) headers["X-TC-Region"] = region;
  if (token) headers["X-TC-Token"] = token;
  return headers;
}
