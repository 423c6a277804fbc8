// Token Broker from Node.js: a direct invocation with a caller proof (CONTRACT.md, Caller identity).
// TOKEN_BROKER_FUNCTION=<the broker's function ARN> node get-token.mjs <profile>
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

const brokerArn = process.env.TOKEN_BROKER_FUNCTION; // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:ALIAS]
const [, partition, , region] = brokerArn.split(":");
const audience = brokerArn.split(":").slice(0, 7).join(":"); // the unqualified function ARN
const suffix = partition === "aws-cn" ? "amazonaws.com.cn" : "amazonaws.com";
const lambda = new LambdaClient({ region });

// Sign, with this process's own credentials, an sts:GetCallerIdentity request that is never sent.
async function callerProof() {
  const host = `sts.${region}.${suffix}`;
  const signer = new SignatureV4({
    service: "sts",
    region,
    credentials: lambda.config.credentials,
    sha256: Sha256,
    applyChecksum: false, // the contract's signed headers are exactly these, no content hash
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: "POST",
      protocol: "https:",
      hostname: host,
      path: "/",
      headers: {
        host,
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        "x-token-broker-audience": audience,
      },
      body: "Action=GetCallerIdentity&Version=2011-06-15",
    }),
  );
  const [, credential, signedHeaders, signature] = signed.headers.authorization.match(
    /Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})/,
  );
  const proof = { v: 1, credential, amz_date: signed.headers["x-amz-date"], signed_headers: signedHeaders, signature };
  if (signed.headers["x-amz-security-token"]) proof.security_token = signed.headers["x-amz-security-token"];
  return proof;
}

export async function getToken(profile, { scopes, minTtl } = {}) {
  const request = { profile, caller_proof: await callerProof() };
  if (scopes) request.scopes = scopes;
  if (minTtl !== undefined) request.min_ttl = minTtl;
  const { Payload, FunctionError } = await lambda.send(
    new InvokeCommand({ FunctionName: brokerArn, Payload: JSON.stringify(request) }),
  );
  if (FunctionError) throw new Error(`the broker failed (${FunctionError})`);
  const answer = JSON.parse(Buffer.from(Payload).toString());
  if (answer.error) throw Object.assign(new Error(`${answer.error}: ${answer.error_description}`), answer);
  return answer; // {access_token, token_type, expires_in, expires_at, scope}: keep it until near expires_at
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const answer = await getToken(process.argv[2] ?? "okta-default");
  console.log(JSON.stringify({ ...answer, access_token: `${answer.access_token.slice(0, 4)}…` }));
}
