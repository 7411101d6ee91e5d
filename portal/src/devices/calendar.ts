/**
 * The calendar of a heat map: weeks as columns (Monday first), days as
 * rows, ending with the week of `today` (UTC, the days the API counts in).
 * Each day gets a level 0..4 relative to the busiest day shown, so a
 * device that sends 3 messages a day and one that sends 3000 both show
 * their rhythm.
 */

import type { DayCount } from "@/api";

export interface CalendarDay {
  date: string;
  count: number;
  level: 0 | 1 | 2 | 3 | 4;
  /** After `today`: drawn empty, so the last column keeps its shape. */
  future: boolean;
}

export interface Calendar {
  weeks: CalendarDay[][];
  total: number;
  busiest: number;
  first: string;
  last: string;
}

const DAY_MS = 86_400_000;

export function utcDay(time: number): string {
  return new Date(time).toISOString().slice(0, 10);
}

function level(count: number, busiest: number): CalendarDay["level"] {
  if (count <= 0 || busiest <= 0) return 0;
  return Math.min(4, Math.max(1, Math.ceil((count / busiest) * 4))) as CalendarDay["level"];
}

/** The first day (UTC midnight) a calendar of `weeks` weeks ending in the week of `now` shows. */
export function calendarStart(now: number, weeks: number): Date {
  const today = Date.parse(utcDay(now));
  const weekday = (new Date(today).getUTCDay() + 6) % 7; // Monday 0
  return new Date(today - (weekday + 7 * (weeks - 1)) * DAY_MS);
}

export function buildCalendar(counts: readonly DayCount[], now: number, weeks: number): Calendar {
  const byDate = new Map(counts.map((day) => [day.date, day.count]));
  const start = calendarStart(now, weeks).getTime();
  const today = utcDay(now);
  const days: { date: string; count: number; future: boolean }[] = [];
  for (let i = 0; i < weeks * 7; i += 1) {
    const date = utcDay(start + i * DAY_MS);
    days.push({ date, count: byDate.get(date) ?? 0, future: date > today });
  }
  const shown = days.filter((day) => !day.future);
  const busiest = Math.max(0, ...shown.map((day) => day.count));
  const total = shown.reduce((sum, day) => sum + day.count, 0);
  const weeksOfDays: CalendarDay[][] = [];
  for (let w = 0; w < weeks; w += 1) {
    weeksOfDays.push(
      days.slice(w * 7, w * 7 + 7).map((day) => ({ ...day, level: day.future ? 0 : level(day.count, busiest) })),
    );
  }
  return { weeks: weeksOfDays, total, busiest, first: days[0]?.date ?? today, last: today };
}
