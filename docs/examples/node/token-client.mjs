// Token Broker's client for Node.js (docs/CONTRACT.md): tokens kept in memory until they would fall
// below their min TTL, one broker call at a time per key, and a caller proof on every call.
//
//   const tokens = new TokenClient();  // env TOKEN_BROKER_FUNCTION, or TOKEN_BROKER_URL + TOKEN_BROKER_AUDIENCE
//   const headers = await tokens.headers("okta-default", "GET", "https://api.example.com/v1/users");
//   // {Authorization: "Bearer …"}, or for a DPoP profile {Authorization: "DPoP …", DPoP: "<a fresh proof>"}
//   const response = await tokens.fetch("okta-admin", "https://api.example.com/v1/users");  // the same, sent
//
// A DPoP token (RFC 9449) comes with its key: each request gets a new proof for its method and URL, with
// `ath` and the resource server's nonce once it gave one; a 401 asking for a nonce (use_dpop_nonce) is
// answered by sending the request once more with it (kept per origin).
//
// Direct invocation names the broker by its alias ARN (output TokenBrokerAliasArn); the HTTP route by its
// URL, signed with SigV4 for execute-api, with proofs for the broker's audience (the stack output
// TokenBrokerAudience). Credentials are the AWS SDK's default chain (the function's own role).
import { createHash, createPrivateKey, constants, randomBytes, sign } from "node:crypto";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

const DEFAULT_MIN_TTL_SECONDS = 60; // the broker's own floor
const PROOF_REUSE_MS = 240_000; // the broker accepts a proof for 5 minutes; a new one after 4
const FUNCTION_ARN = /^(arn:(aws(?:-[a-z]+)*):lambda:([a-z0-9-]+):\d{12}:function:[\w-]{1,64})(?::[\w$-]{1,128})?$/;
// STS's domain in each partition (tests/test_wire.py holds it to the broker's and token_client's)
const STS_SUFFIX = {
  aws: "amazonaws.com",
  "aws-us-gov": "amazonaws.com",
  "aws-cn": "amazonaws.com.cn",
  "aws-iso": "c2s.ic.gov",
  "aws-iso-b": "sc2s.sgov.gov",
  "aws-iso-e": "cloud.adc-e.uk",
  "aws-iso-f": "csp.hci.ic.gov",
  "aws-eusc": "amazonaws.eu",
};
const PROOF_VERSION = 1;
const PROOF_BODY = "Action=GetCallerIdentity&Version=2011-06-15";
const PROOF_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8";
const AUDIENCE_HEADER = "x-token-broker-audience";
const PROOF_TYPE = "dpop+jwt";

export class TokenBrokerError extends Error {
  // `error` and `status` are the contract's (invalid_scope, 400; upstream_unavailable, 503; ...) or
  // this client's own: client_misconfigured, broker_unreachable, broker_failed.
  constructor(error, status, description, retryAfter = undefined) {
    super(`${error} (${status}): ${description}`);
    Object.assign(this, { error, status, description, retryAfter });
  }
}

const misconfigured = (description) => new TokenBrokerError("client_misconfigured", 500, description);
const b64url = (bytes) => Buffer.from(bytes).toString("base64url");
const NONCE = /^[\x21\x23-\x5b\x5d-\x7e]{1,512}$/; // RFC 9449 §8.1: NQCHAR
const NONCE_CHALLENGE = /\bDPoP\b(?:[^"]|"[^"]*")*?\berror="use_dpop_nonce"/i;
const PUBLIC_MEMBERS = { EC: ["crv", "kty", "x", "y"], RSA: ["e", "kty", "n"] };

// A DPoP token's key, from the broker's private JWK: makes a fresh proof for each request.
class DpopKey {
  #key;
  #header;
  constructor(jwk) {
    const ec = jwk?.kty === "EC" && jwk.crv === "P-256" && jwk.alg === "ES256";
    const rsa = jwk?.kty === "RSA" && (jwk.alg === "RS256" || jwk.alg === "PS256");
    if (!ec && !rsa) throw new TokenBrokerError("broker_failed", 502, "the broker's DPoP key is not one this client signs with");
    this.algorithm = jwk.alg;
    this.#key = createPrivateKey({ key: jwk, format: "jwk" });
    const publicJwk = Object.fromEntries(PUBLIC_MEMBERS[jwk.kty].map((name) => [name, jwk[name]]));
    this.thumbprint = b64url(createHash("sha256").update(JSON.stringify(publicJwk)).digest()); // RFC 7638
    this.#header = b64url(JSON.stringify({ typ: PROOF_TYPE, alg: jwk.alg, jwk: publicJwk }));
  }

  proof(method, url, accessToken, nonce = undefined) {
    const target = new URL(url);
    const claims = {
      jti: b64url(randomBytes(16)),
      htm: method.toUpperCase(),
      htu: `${target.origin}${target.pathname}`, // no query, no fragment
      iat: Math.floor(Date.now() / 1000),
      ath: b64url(createHash("sha256").update(accessToken).digest()),
    };
    if (nonce !== undefined) claims.nonce = nonce;
    const input = `${this.#header}.${b64url(JSON.stringify(claims))}`;
    const options = { key: this.#key };
    if (this.algorithm === "ES256") options.dsaEncoding = "ieee-p1363";
    if (this.algorithm === "PS256") Object.assign(options, { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    return `${input}.${b64url(sign("sha256", Buffer.from(input), options))}`;
  }
}

// What a proof is made for: the broker's unqualified function ARN, its region and STS host.
function brokerOf(functionArn, what) {
  const match = FUNCTION_ARN.exec(functionArn ?? "");
  if (!match || !STS_SUFFIX[match[2]]) throw misconfigured(`${what} must be the broker's function ARN (its alias ARN, output TokenBrokerAliasArn)`);
  return { audience: match[1], region: match[3], stsHost: `sts.${match[3]}.${STS_SUFFIX[match[2]]}` };
}

const keyOf = (profile, scopes) => JSON.stringify([profile, scopes ? [...new Set(scopes)].sort() : null]);

function isLoopback(hostname) {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

export class TokenClient {
  constructor({ functionArn, url, audience, region, credentials, lambdaClient } = {}) {
    functionArn ??= url ? undefined : process.env.TOKEN_BROKER_FUNCTION;
    url ??= functionArn ? undefined : process.env.TOKEN_BROKER_URL;
    if (!functionArn && !url) {
      throw misconfigured(
        "name the broker: functionArn or env TOKEN_BROKER_FUNCTION (its alias ARN, the stack output " +
          "TokenBrokerAliasArn), or url and audience, or env TOKEN_BROKER_URL and TOKEN_BROKER_AUDIENCE (its HTTP route)",
      );
    }
    this.credentials = credentials ?? defaultProvider();
    this.tokens = new Map(); // key -> {value, expiresAt, scope, tokenType, dpopKey}
    this.nonces = new Map(); // origin -> the resource server's latest DPoP nonce
    this.calls = new Map(); // key -> the broker call in flight
    this.refused = new Set(); // keys whose next call asks with force_refresh
    this.proof = undefined;
    if (functionArn) {
      this.broker = brokerOf(functionArn, "functionArn (TOKEN_BROKER_FUNCTION)");
      this.functionArn = functionArn;
      this.lambda = lambdaClient ?? new LambdaClient({ region: this.broker.region, credentials: this.credentials });
    } else {
      audience ??= process.env.TOKEN_BROKER_AUDIENCE;
      if (!audience) {
        throw misconfigured("name the broker's audience: audience or env TOKEN_BROKER_AUDIENCE (TokenBrokerAudience)");
      }
      this.broker = brokerOf(audience, "audience (TOKEN_BROKER_AUDIENCE)");
      const parsed = new URL(url.replace(/\/+$/, "").replace(/\/token$/, "") + "/token");
      if (parsed.protocol !== "https:" && !(parsed.protocol === "http:" && isLoopback(parsed.hostname))) {
        throw misconfigured("the broker's URL must be https (http only on a loopback host)");
      }
      if (parsed.username || parsed.password) throw misconfigured("the broker's URL may not hold credentials");
      this.url = parsed;
      this.region = region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? this.broker.region;
    }
  }

  // A token for `profile` with at least `minTtl` seconds (default 60) left.
  async getToken(profile, { scopes, minTtl } = {}) {
    return (await this.token(profile, { scopes, minTtl })).value;
  }

  // {value, expiresAt (epoch ms), scope, tokenType}
  async token(profile, { scopes, minTtl } = {}) {
    const key = keyOf(profile, scopes);
    const floor = (minTtl ?? DEFAULT_MIN_TTL_SECONDS) * 1000;
    for (;;) {
      const kept = this.tokens.get(key);
      if (kept && !this.refused.has(key) && kept.expiresAt - Date.now() >= floor) return kept;
      const inFlight = this.calls.get(key);
      if (!inFlight) break;
      await inFlight; // its error is this caller's too; its token may be too short for this min TTL: look again
    }
    const call = this.#ask(profile, scopes, minTtl, this.refused.has(key));
    this.calls.set(key, call);
    try {
      const token = await call;
      this.tokens.set(key, token);
      this.refused.delete(key);
      return token;
    } finally {
      if (this.calls.get(key) === call) this.calls.delete(key);
    }
  }

  // {Authorization: "Bearer …"} for a Bearer profile; a DPoP profile needs headers().
  async authHeader(profile, { scopes, minTtl } = {}) {
    const token = await this.token(profile, { scopes, minTtl });
    if (token.dpopKey) {
      throw new TokenBrokerError(
        "dpop_required",
        400,
        `profile ${profile}'s tokens are DPoP-bound: use headers(profile, method, url), which adds a proof for each request`,
      );
    }
    return { Authorization: `${token.tokenType} ${token.value}` };
  }

  // What one request to `url` needs: the Authorization header, and for a DPoP token a fresh proof.
  async headers(profile, method, url, { scopes, minTtl } = {}) {
    return this.#headersFor(await this.token(profile, { scopes, minTtl }), method, url);
  }

  // Keeps a resource server's DPoP-Nonce for its origin; whether it was one to keep.
  rememberNonce(url, nonce) {
    if (typeof nonce !== "string" || !NONCE.test(nonce)) return false;
    this.nonces.set(new URL(url).origin, nonce);
    return true;
  }

  // fetch() with the profile's token: a 401 asking for a DPoP nonce is sent once more with it; any
  // other 401 once more with a different token, if the broker has one.
  async fetch(profile, url, init = {}, { scopes, minTtl } = {}) {
    const method = init.method ?? "GET";
    const send = async (token) =>
      fetch(url, { ...init, redirect: "manual", headers: { ...init.headers, ...this.#headersFor(token, method, url) } });
    const token = await this.token(profile, { scopes, minTtl });
    const response = await send(token);
    const given = this.rememberNonce(url, response.headers.get("dpop-nonce") ?? undefined);
    if (response.status !== 401) return response;
    if (token.dpopKey && given && NONCE_CHALLENGE.test(response.headers.get("www-authenticate") ?? "")) {
      return send(token);
    }
    this.invalidate(profile, { scopes });
    const fresh = await this.token(profile, { scopes, minTtl });
    return fresh.value === token.value ? response : send(fresh);
  }

  #headersFor(token, method, url) {
    const headers = { Authorization: `${token.tokenType} ${token.value}` };
    if (token.dpopKey) headers.DPoP = token.dpopKey.proof(method, url, token.value, this.nonces.get(new URL(url).origin));
    return headers;
  }

  // The API refused the token: forget it; the next call asks the broker with force_refresh.
  invalidate(profile, { scopes } = {}) {
    const key = keyOf(profile, scopes);
    this.tokens.delete(key);
    this.refused.add(key);
  }

  async #ask(profile, scopes, minTtl, forceRefresh) {
    const request = { profile };
    if (scopes) request.scopes = [...new Set(scopes)].sort();
    if (minTtl !== undefined) request.min_ttl = minTtl;
    if (forceRefresh) request.force_refresh = true;
    request.caller_proof = await this.#callerProof();
    const answer = this.lambda ? await this.#invoke(request) : await this.#post(request);
    if (answer.error) {
      throw new TokenBrokerError(answer.error, answer.status, answer.error_description ?? "", answer.retry_after);
    }
    if (typeof answer.access_token !== "string" || !Number.isInteger(answer.expires_in)) {
      throw new TokenBrokerError("broker_failed", 502, "the broker's answer has no access_token and expires_in");
    }
    if ((answer.token_type === "DPoP") !== (typeof answer.dpop_key === "object" && answer.dpop_key !== null)) {
      throw new TokenBrokerError("broker_failed", 502, "the broker's answer pairs a DPoP token and its key wrongly");
    }
    return {
      value: answer.access_token,
      expiresAt: Date.now() + answer.expires_in * 1000,
      scope: answer.scope ?? "",
      tokenType: answer.token_type ?? "Bearer",
      dpopKey: answer.dpop_key ? new DpopKey(answer.dpop_key) : undefined,
    };
  }

  async #invoke(request) {
    let response;
    try {
      response = await this.lambda.send(
        new InvokeCommand({ FunctionName: this.functionArn, Payload: JSON.stringify(request) }),
      );
    } catch (cause) {
      const status = cause.$metadata?.httpStatusCode;
      throw Object.assign(
        new TokenBrokerError("broker_unreachable", status === 403 ? 403 : 503, `invoke failed: ${cause.name}`),
        { cause },
      );
    }
    if (response.FunctionError) throw new TokenBrokerError("broker_failed", 502, response.FunctionError);
    return JSON.parse(Buffer.from(response.Payload).toString());
  }

  async #post(request) {
    const body = JSON.stringify(request);
    const signer = new SignatureV4({
      service: "execute-api",
      region: this.region,
      credentials: this.credentials,
      sha256: Sha256,
    });
    const signed = await signer.sign(
      new HttpRequest({
        method: "POST",
        protocol: this.url.protocol,
        hostname: this.url.hostname,
        port: this.url.port ? Number(this.url.port) : undefined,
        path: this.url.pathname,
        headers: { host: this.url.host, "content-type": "application/json" },
        body,
      }),
    );
    let response;
    try {
      response = await fetch(this.url, { method: "POST", headers: signed.headers, body, redirect: "error" });
    } catch (cause) {
      throw Object.assign(new TokenBrokerError("broker_unreachable", 503, "the broker's route could not be reached"), {
        cause,
      });
    }
    const text = await response.text();
    let answer;
    try {
      answer = JSON.parse(text);
    } catch {
      answer = {};
    }
    if (typeof answer.error === "string") {
      const retryAfter = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
      return { ...answer, status: response.status, retry_after: Number.isNaN(retryAfter) ? undefined : retryAfter };
    }
    if (response.status !== 200) {
      throw new TokenBrokerError(
        response.status === 403 ? "broker_forbidden" : "broker_failed",
        response.status,
        `the broker's route answered HTTP ${response.status}`,
      );
    }
    return answer;
  }

  // Signs, with this process's own credentials, an sts:GetCallerIdentity request that is never
  // sent; reused for 4 minutes, and while the credentials stay the same.
  async #callerProof() {
    const credentials = await this.credentials();
    const identity = `${credentials.accessKeyId}:${credentials.sessionToken ?? ""}`;
    if (this.proof && this.proof.identity === identity && Date.now() - this.proof.signedAt < PROOF_REUSE_MS) {
      return this.proof.fields;
    }
    const { audience, region, stsHost } = this.broker;
    const signer = new SignatureV4({ service: "sts", region, credentials, sha256: Sha256, applyChecksum: false });
    const signed = await signer.sign(
      new HttpRequest({
        method: "POST",
        protocol: "https:",
        hostname: stsHost,
        path: "/",
        headers: {
          host: stsHost,
          "content-type": PROOF_CONTENT_TYPE,
          [AUDIENCE_HEADER]: audience,
        },
        body: PROOF_BODY,
      }),
    );
    const [, credential, signedHeaders, signature] = signed.headers.authorization.match(
      /Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})/,
    );
    const fields = { v: PROOF_VERSION, credential, amz_date: signed.headers["x-amz-date"], signed_headers: signedHeaders, signature };
    if (signed.headers["x-amz-security-token"]) fields.security_token = signed.headers["x-amz-security-token"];
    this.proof = { fields, identity, signedAt: Date.now() };
    return fields;
  }
}
