"""The built-in browser inbox: a live card channel per team, rep login by signed link."""
