export const name = 'dep';
