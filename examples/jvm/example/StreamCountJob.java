package example;

import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedList;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.streaming.api.java.JavaStreamingContext;

/**
 * A JVM job for a streaming context: a public static {@code run(JavaStreamingContext, String)}
 * gets the context's StreamingContext. It streams three queued batches of three numbers, stops
 * its StreamingContext (not Spark) and returns how many non-empty batches and elements it saw.
 */
public class StreamCountJob {
    public static Object run(JavaStreamingContext ssc, String configJson) throws InterruptedException {
        Queue<JavaRDD<Integer>> batches = new LinkedList<>();
        for (int batch = 0; batch < 3; batch++) {
            batches.add(ssc.sparkContext().parallelize(Arrays.asList(1, 2, 3)));
        }
        AtomicInteger seen = new AtomicInteger();
        AtomicLong elements = new AtomicLong();
        ssc.queueStream(batches).foreachRDD(rdd -> {
            long count = rdd.count();
            if (count > 0) { // once the queue is empty, every batch is
                elements.addAndGet(count);
                seen.incrementAndGet();
            }
        });
        ssc.start();
        long deadline = System.currentTimeMillis() + 60_000;
        while (seen.get() < 3 && System.currentTimeMillis() < deadline) {
            ssc.awaitTerminationOrTimeout(100);
        }
        ssc.stop(false, true);
        Map<String, Object> result = new HashMap<>();
        result.put("batches", seen.get());
        result.put("elements", elements.get());
        return result;
    }
}
