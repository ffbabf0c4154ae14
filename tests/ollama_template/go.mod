module studio/ollamatemplate

go 1.19
