// The console's only way to the server: signed API 3.0 calls, the same front door as the SDK.
// Temporary credentials live in sessionStorage (gone with the tab, removed at sign-out or
// expiry); the SecretKey typed at sign-in is used for one signature and then dropped.
import { signedHeaders } from "./tc3.js";

const LIGHTHOUSE = { service: "lighthouse", version: "2020-03-24", path: "/" };
const STS = { service: "sts", version: "2018-08-13", path: "/console/sts" };
const SESSION_KEY = "lightkeeper.session";
const LANGUAGE_KEY = "lightkeeper.language";
const SESSION_SECONDS = 3600;

export class ApiError extends Error {
  constructor(code, message, requestId) {
    super(message);
    this.code = code;
    this.requestId = requestId;
  }
}

export function language() {
  return sessionStorage.getItem(LANGUAGE_KEY) || "en-US";
}

export function setLanguage(value) {
  sessionStorage.setItem(LANGUAGE_KEY, value);
}

export function session() {
  const raw = sessionStorage.getItem(SESSION_KEY);
  if (!raw) return null;
  const found = JSON.parse(raw);
  if (found.expiredTime * 1000 <= Date.now() + 5000) {
    signOut();
    return null;
  }
  return found;
}

export function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
}

async function post(target, credentials, action, params, region) {
  const payload = JSON.stringify(params || {});
  const headers = await signedHeaders({
    ...credentials, service: target.service, action, version: target.version, region,
    language: language(), payload, host: location.host,
  });
  let reply;
  try {
    reply = await fetch(target.path, {
      method: "POST", headers, body: payload, credentials: "omit", cache: "no-store",
      referrerPolicy: "no-referrer",
    });
  } catch (error) {
    throw new ApiError("NetworkError", String(error), "");
  }
  const body = (await reply.json()).Response;
  if (body.Error) throw new ApiError(body.Error.Code, body.Error.Message, body.RequestId);
  return body;
}

// Sign in: one GetFederationToken signed with the typed key; only its answer is kept.
export async function signIn(secretId, secretKey) {
  const reply = await post(STS, { secretId, secretKey }, "GetFederationToken",
    { Name: "console", DurationSeconds: SESSION_SECONDS });
  const c = reply.Credentials;
  const kept = {
    secretId: c.TmpSecretId, secretKey: c.TmpSecretKey, token: c.Token,
    expiredTime: reply.ExpiredTime, who: secretId,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(kept));
  return kept;
}

export async function call(action, params, region) {
  const current = session();
  if (!current) throw new ApiError("AuthFailure.TokenFailure", "signed out", "");
  const { secretId, secretKey, token } = current;
  return post(LIGHTHOUSE, { secretId, secretKey, token }, action, params, region);
}
