import { createContext, useContext } from "react";

/** NO_COLOR turns colours off; bold, dim and inverse stay (they are not colour). */
export interface Theme {
  color: boolean;
}

export const ThemeContext = createContext<Theme>({ color: true });

export function useColor(): (name: string) => string | undefined {
  const { color } = useContext(ThemeContext);
  return (name) => (color ? name : undefined);
}
