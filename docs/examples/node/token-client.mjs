// Token Broker's client for Node.js (docs/CONTRACT.md): tokens kept in memory until they would fall
// below their min TTL, one broker call at a time per key, and a caller proof on every call.
//
//   const tokens = new TokenClient();  // env TOKEN_BROKER_FUNCTION, or TOKEN_BROKER_URL + TOKEN_BROKER_AUDIENCE
//   const headers = { Authorization: `Bearer ${await tokens.getToken("okta-default")}` };
//
// Direct invocation names the broker by its alias ARN (output TokenBrokerAliasArn); the HTTP route by its
// URL, signed with SigV4 for execute-api, with proofs for the broker's audience (the stack output
// TokenBrokerAudience). Credentials are the AWS SDK's default chain (the function's own role).
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

const DEFAULT_MIN_TTL_SECONDS = 60; // the broker's own floor
const PROOF_REUSE_MS = 240_000; // the broker accepts a proof for 5 minutes; a new one after 4
const FUNCTION_ARN = /^(arn:(aws(?:-[a-z]+)*):lambda:([a-z0-9-]+):\d{12}:function:[\w-]{1,64})(?::[\w$-]{1,128})?$/;
const STS_SUFFIX = { aws: "amazonaws.com", "aws-us-gov": "amazonaws.com", "aws-cn": "amazonaws.com.cn" };

export class TokenBrokerError extends Error {
  // `error` and `status` are the contract's (invalid_scope, 400; upstream_unavailable, 503; ...) or
  // this client's own: client_misconfigured, broker_unreachable, broker_failed.
  constructor(error, status, description, retryAfter = undefined) {
    super(`${error} (${status}): ${description}`);
    Object.assign(this, { error, status, description, retryAfter });
  }
}

const misconfigured = (description) => new TokenBrokerError("client_misconfigured", 500, description);

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
    this.tokens = new Map(); // key -> {value, expiresAt, scope, tokenType}
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
    return {
      value: answer.access_token,
      expiresAt: Date.now() + answer.expires_in * 1000,
      scope: answer.scope ?? "",
      tokenType: answer.token_type ?? "Bearer",
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
          "content-type": "application/x-www-form-urlencoded; charset=utf-8",
          "x-token-broker-audience": audience,
        },
        body: "Action=GetCallerIdentity&Version=2011-06-15",
      }),
    );
    const [, credential, signedHeaders, signature] = signed.headers.authorization.match(
      /Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})/,
    );
    const fields = { v: 1, credential, amz_date: signed.headers["x-amz-date"], signed_headers: signedHeaders, signature };
    if (signed.headers["x-amz-security-token"]) fields.security_token = signed.headers["x-amz-security-token"];
    this.proof = { fields, identity, signedAt: Date.now() };
    return fields;
  }
}
