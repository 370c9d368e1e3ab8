// Types for the part of des.js (pure-JS DES, no bundled types) that idsync uses.
declare module 'des.js' {
  interface DesCipher {
    update(data: number[]): number[];
    final(): number[];
  }
  const desjs: {
    DES: { create(options: { type: 'encrypt' | 'decrypt'; key: number[]; padding?: boolean }): DesCipher };
  };
  export default desjs;
}
