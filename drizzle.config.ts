// drizzle-kit generates migrations/ from src/db/schema.ts; triggers and grants are hand-written
// custom migrations (`npx drizzle-kit generate --custom --name <name>`).
import { defineConfig } from 'drizzle-kit'

export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations',
})
