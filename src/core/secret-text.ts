/**
 * A message from elsewhere (a directory, a driver, a library) about a call that carried a secret,
 * made safe to show. A secret of 8 characters or more is blanked out where it occurs. A shorter one
 * withholds the whole message: it can occur inside ordinary words, and blanking it there showed
 * where it matched (the secret `x` turned the cloud's URL into `https://cloud.e[redacted]ample.com`).
 */
export function withoutSecret(text: string, secret: string | undefined): string {
  if (!secret || !text.includes(secret)) return text;
  return secret.length >= 8 ? text.split(secret).join('[redacted]') : '(the message is withheld: it contained the secret)';
}
