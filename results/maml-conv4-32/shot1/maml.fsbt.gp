if (!exists("outfile")) outfile = "maml.fsbt.png"
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 800,560 noenhanced font ",11"
} else {
    set terminal png size 800,560 noenhanced
}
set output outfile
set datafile separator ','
set key bottom right
set xlabel 'epoch'
set ylabel 'accuracy'
set y2label 'loss'
set y2tics
set ytics nomirror
set title 'fsbench pre-training (conv4)'
plot 'results/maml-conv4-32/shot1/maml.fsbt.csv' skip 1 using 1:4 with lines title 'train acc', '' skip 1 using 1:($5 >= 0 ? $5 : 1/0) with linespoints title 'val 1-shot', '' skip 1 using 1:3 axes x1y2 with lines title 'loss'
