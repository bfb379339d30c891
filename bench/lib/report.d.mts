/** Types of bench/lib/report.mjs (for test/bench/report.test.ts under `tsc --noEmit`). */
export interface BenchRow {
  workload: string
  name: string
  unit: string
  value: number | null
  p50?: number | null
  p99?: number | null
  ratio?: number | null
  rss?: { peak: number; hwm: number | null } | null
  baseline?: { name?: string; unit?: string; value?: number | null; p50?: number | null; p99?: number | null }
  targets?: { text: string; measured: string; met: boolean | null }[]
  notes?: string[]
  [k: string]: unknown
}
export interface BenchResult {
  startedAt?: string
  machine?: Record<string, any>
  settings?: Record<string, any>
  rows?: BenchRow[]
  skipped?: string[]
  errors?: { workload: string; message: string }[]
  notes?: string[]
  [k: string]: unknown
}
export interface ImportFigures {
  endToEndRowsPerS: number
  endToEndS: number
  copyRowsPerS: number | null
  copyS: number | null
  uploadRowsPerS: number | null
  processingRowsPerS: number | null
  rss: { idle: number; uploadPeak: number; processingPeak: number; hwm: number } | null
  status: { status: string; applied: number; rejected: number; duplicate: number; total: number } | null
}
export function describeMachine(postgresVersion: string): Record<string, any>
export function formatValue(value: number | null | undefined, unit: string): string
export function toMarkdown(result: BenchResult): string
export function parseImportOutput(text: string): ImportFigures | null
