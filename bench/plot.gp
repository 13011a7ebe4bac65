# bench/plot.gp: one workload's servers side by side; drawn by bench/run.sh as
#   gnuplot -e "datafile='D'; outfile='O'; plottitle='T'; ylab1='Y1'; ylab2='Y2'" bench/plot.gp
# D has tab-separated rows: server, value median, min, max, cost median, min, max, colour
# (1 = libtstream). The left panel is the throughput (or memory) measured by compare.sh, the
# right one (if ylab2 is not empty) the cost per unit, on a log scale.
set terminal pngcairo size 1200,460 font ",10"
set output outfile
set datafile separator "\t"
set datafile missing "-"
set style fill solid 0.75 border -1
set boxwidth 0.6
set linetype 1 lc rgb "#c0392b"
set linetype 2 lc rgb "#2e6da4"
set grid ytics
set xtics nomirror noenhanced font ",9"
lab(v) = v >= 100 ? sprintf("%.0f", v) : sprintf("%.3g", v)
set key off
set offsets 0.5, 0.5, 0, 0
set title noenhanced

if (strlen(ylab2) > 0) {
    set multiplot layout 1,2 title plottitle noenhanced
    set title "throughput" noenhanced
} else {
    set title plottitle noenhanced
}
set ylabel ylab1 noenhanced
set yrange [0:*]
plot datafile using 0:2:8:xtic(1) with boxes lc variable, \
     '' using 0:2:3:4 with yerrorbars lc rgb "black" pt 7 ps 0.4, \
     '' using 0:2:(lab($2)) with labels offset 0,0.8 font ",9"

if (strlen(ylab2) > 0) {
    set title "cost per unit (lower is better)" noenhanced
    set ylabel ylab2 noenhanced
    set logscale y
    set yrange [*:*]
    set autoscale y
    plot datafile using 0:5:8:xtic(1) with boxes lc variable, \
         '' using 0:5:6:7 with yerrorbars lc rgb "black" pt 7 ps 0.4, \
         '' using 0:5:(lab($5)) with labels offset 0,0.8 font ",9"
    unset multiplot
}
