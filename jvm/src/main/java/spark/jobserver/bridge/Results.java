package spark.jobserver.bridge;

import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;

/**
 * A job's result as plain Java values the driver turns into JSON: maps, lists, strings, booleans
 * and numbers; Scala collections, arrays, Rows, Options and other Products as lists or maps, as
 * spark-jobserver rendered them; anything else as its string form.
 */
final class Results {
    private Results() {}

    static Object plain(Object value) {
        if (value == null || value instanceof String || value instanceof Boolean) {
            return value;
        }
        if (value instanceof Integer || value instanceof Long || value instanceof Double
                || value instanceof Float || value instanceof Short || value instanceof Byte) {
            return value;
        }
        if (value instanceof Character || value instanceof Number) {
            return value.toString(); // BigInteger, BigDecimal: exact, as spark-jobserver did
        }
        if (value instanceof Map<?, ?> map) {
            Map<String, Object> plain = new LinkedHashMap<>();
            map.forEach((key, item) -> plain.put(String.valueOf(key), plain(item)));
            return plain;
        }
        if (value instanceof scala.collection.Map<?, ?> map) {
            return plain(scala.jdk.javaapi.CollectionConverters.asJava(map));
        }
        if (value instanceof Iterable<?> items) {
            List<Object> plain = new ArrayList<>();
            items.forEach(item -> plain.add(plain(item)));
            return plain;
        }
        if (value instanceof scala.collection.Iterable<?> items) {
            return plain(scala.jdk.javaapi.CollectionConverters.asJava(items));
        }
        if (value.getClass().isArray()) {
            List<Object> plain = new ArrayList<>();
            for (int index = 0; index < Array.getLength(value); index++) {
                plain.add(plain(Array.get(value, index)));
            }
            return plain;
        }
        if (value instanceof Row row) {
            List<Object> plain = new ArrayList<>();
            for (int index = 0; index < row.length(); index++) {
                plain.add(plain(row.get(index)));
            }
            return plain;
        }
        if (value instanceof scala.Product product) {
            return plain(scala.jdk.javaapi.CollectionConverters.asJava(product.productIterator()));
        }
        if (value instanceof java.util.Iterator<?> items) {
            List<Object> plain = new ArrayList<>();
            items.forEachRemaining(item -> plain.add(plain(item)));
            return plain;
        }
        return value.toString();
    }
}
