// Lint: the recommended JS and TypeScript rules; unused names are errors (prefix with _ to keep one).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/**', 'engines/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-empty': ['error', { allowEmptyCatch: true }],
      'no-control-regex': 'off',
    },
  },
  {
    // zod comes configured from lib/zod.ts (jitless: see there), so that no schema is built before the setting.
    files: ['lib/**/*.ts', 'scripts/**/*.ts'],
    ignores: ['lib/zod.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { paths: [{ name: 'zod', message: "import { z } from lib/zod.ts (configured), not from 'zod'" }] },
      ],
    },
  },
)
